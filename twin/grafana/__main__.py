"""``python -m twin.grafana [--check] [directory]``: write (or check) the dashboard JSON files.

The directory defaults to ``dashboards/`` of the repository this package sits in; the standard
dashboards go to its ``json/``, the instructor's to its ``instructor/``. With ``--check``
nothing is written, and the exit status is 1 when a file is missing or out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twin.grafana.dashboards import stale_files, write_all

DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "dashboards"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin.grafana", description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIRECTORY)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    directory: Path = args.directory
    if args.check:
        stale = stale_files(directory)
        for name in stale:
            print(f"{directory / name} is out of date: run `make dashboards`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(directory):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
