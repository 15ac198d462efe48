"""The console's pure JavaScript modules (alarm sound patterns, state merging), tested with node's
own test runner: ``node --test tests/web``. Node comes with ``make test`` (Debian's nodejs)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_console_js_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make test` (it installs the Debian package nodejs)")
    run = subprocess.run(
        [node, "--test", "tests/web/"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-4000:]
    passed = re.search(r"^# pass (\d+)$", run.stdout, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", run.stdout, re.MULTILINE)
    assert passed, report[-4000:]
    assert failed, report[-4000:]
    assert int(failed.group(1)) == 0
    assert int(passed.group(1)) >= 13, "the node tests did not all run"  # as many as tests/web defines today
