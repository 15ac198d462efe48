"""Run every benchmark in this package (``make bench``); each prints its own final JSON line."""

from __future__ import annotations

import importlib
import pkgutil

from benchmarks import __path__ as _package_path


def main() -> None:
    for name in sorted(
        module.name for module in pkgutil.iter_modules(_package_path) if not module.name.startswith("_")
    ):
        print(f"# benchmarks.{name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main()
