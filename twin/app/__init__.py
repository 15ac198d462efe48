"""The composition roots: the only modules that wire processes together, one asyncio task group
each (``serve``: the twin service; ``demo``: broker, twin and simulation in one process;
``headless``: a simulation and a twin without a broker, for scenarios and tests; ``backfill``:
months of history into InfluxDB). Everything below them is a pure core or one shell adapter."""
