"""The HTTP API (FastAPI): devices, alarms, commands, live stream, metrics."""
