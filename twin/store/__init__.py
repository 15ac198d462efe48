"""Persistence of the twin: the protocols every back end meets (``protocol``, ``accounts``), the SQLite
journal and accounts on one machine (``journal``, ``users``, ``local``), one PostgreSQL database shared
by twin replicas (``postgres``), and the snapshot codec (``snapshots``)."""
