"""Test harness: real servers started by the tests, and small MQTT helpers."""
