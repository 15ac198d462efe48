"""What goes to InfluxDB, as pure values: measurements, tags, fields (``points``). The writer, the
spool and the retry policy (I/O) are in ``twin.influx``."""
