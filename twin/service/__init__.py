"""The twin service's shell: MQTT ingest, persistence, live push and metrics around the pure mirror."""
