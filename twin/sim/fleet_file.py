"""Reading a fleet file (YAML) into :class:`twin.sim.fleet.FleetFile` (the only I/O of the fleet specs)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from twin.sim.fleet import FleetFile


class FleetFileError(ValueError):
    """A fleet file that cannot be used; the message names the file, the pump and the field."""


def load_fleet_file(path: Path) -> FleetFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FleetFileError(f"{path}: cannot read fleet file: {exc}") from None
    try:
        return FleetFile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid fleet file:"]
        for err in exc.errors(include_url=False)[:10]:
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {loc}: {err['msg']}")
        raise FleetFileError("\n".join(lines)) from None
