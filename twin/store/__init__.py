"""Persistence of the twin: the SQLite journal (alarm transitions, commands, device snapshots)."""

from twin.store.journal import DeviceEventKey, Journal, JournalConflict, JournalError, dedupe_key

__all__ = ["DeviceEventKey", "Journal", "JournalConflict", "JournalError", "dedupe_key"]
