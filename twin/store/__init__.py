"""Persistence of the twin: the protocols every back end meets (``protocol``), the SQLite journal and
accounts on one machine (``journal``, ``users``, ``local``), and the snapshot codec (``snapshots``)."""
