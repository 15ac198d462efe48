"""Persistence of the twin behind the seams of :mod:`twin.store.protocol` (the journal and the
snapshots, partition leases) and :mod:`twin.store.accounts`: today's SQLite files
(:mod:`twin.store.journal`, :mod:`twin.store.users`, async through :mod:`twin.store.sqlite_store`)
on one machine, or one PostgreSQL database shared by twin replicas (:mod:`twin.store.postgres`)."""

from twin.store.journal import DeviceEventKey, Journal, JournalConflict, JournalError, dedupe_key

__all__ = ["DeviceEventKey", "Journal", "JournalConflict", "JournalError", "dedupe_key"]
