"""Reliability drills: real Mosquitto (the shipped configuration), real influxd, ``pumptwin serve``
in its own process, a generated fleet publishing at a steady rate, and a ledger of every message.
Each drill breaks one thing (a backlog, the broker, the twin, InfluxDB, the disk) and asserts that
no alarm and no state was lost or duplicated. docs/reliability.md has the figures."""
