"""Validate docs/asyncapi.yaml with the official AsyncAPI parser (the one `asyncapi validate` uses)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from twin.contract import asyncapi

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"

pytestmark = pytest.mark.integration


def _validate(path: Path) -> tuple[int, list[dict[str, object]]]:
    node = shutil.which("node")
    if node is None or not (VALIDATOR.parent / "node_modules").exists():
        pytest.fail("the AsyncAPI validator is not installed: run `make test` (npm ci in tools/asyncapi)")
    proc = subprocess.run([node, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, lines


def test_document_is_valid_asyncapi_3() -> None:
    code, lines = _validate(asyncapi.DOCUMENT_PATH)
    errors = [line for line in lines if line.get("severity") == 0]
    assert code == 0, errors
    assert lines[-1] == {"valid": True, "errors": 0, "version": "3.0.0"}


def test_validator_rejects_a_broken_document(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(asyncapi.render().replace("action: send", "action: shout", 1))
    code, lines = _validate(broken)
    assert code == 1
    assert any("action" in str(line.get("message")) for line in lines)
