"""A spool whose cursor cannot be saved (the disk full or read-only) goes on: the acknowledgement
moves on in memory, and the cursor is saved at the next acknowledgement that can. Before, the
``OSError`` came out of :meth:`Spool.ack` in the writer's sender and ended the writer and the twin
with it (found by the full-disk drill, tests/drills/test_disk_full.py)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from twin.influx import spool as spool_module
from twin.influx.spool import CURSOR_FILE, Spool


def test_an_unsaved_cursor_does_not_stop_acknowledging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, 64 << 20)
    try:
        spool.append([b"m f=1i 1"])
        spool.append([b"m f=2i 2"])
        first = spool.read(1, 1 << 20)
        assert first is not None
        saved_before = json.loads((tmp_path / CURSOR_FILE).read_text())

        def full(src: object, dst: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(spool_module.os, "replace", full)
        spool.ack(first)  # raised OSError before
        assert spool.acknowledged == first.end
        assert json.loads((tmp_path / CURSOR_FILE).read_text()) == saved_before, "the disk refused it"
        second = spool.read(1, 1 << 20)
        assert second is not None
        assert second.lines() == [b"m f=2i 2"], "the sender goes on from the cursor in memory"
        monkeypatch.undo()  # the disk takes writes again
        spool.ack(second)
        saved = json.loads((tmp_path / CURSOR_FILE).read_text())
        assert (saved["segment"], saved["offset"]) == (second.end.segment, second.end.offset)
    finally:
        spool.close()
