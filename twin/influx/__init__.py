"""Time series into InfluxDB with nothing lost: pure point mapping (``points``), a durable spool
(``spool``) and the asyncio writer (``writer``) that speaks only the v1-compatible HTTP API.

Schema and policies: ``docs/influx-schema.md``.
"""

from twin.influx.writer import InfluxWriter, WriterStats

__all__ = ["InfluxWriter", "WriterStats"]
