"""Time series into InfluxDB with nothing lost: a durable spool (``spool``) and the asyncio writer
(``writer``) that speaks only the v1-compatible HTTP API. The points themselves are pure values in
:mod:`twin.timeseries.points`.

Schema and policies: ``docs/influx-schema.md``.
"""
