"""Run the benchmarks (all, or those named on the command line) and print one table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import bench
from bench._table import Row, render


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    rows: list[Row] = []
    failed = 0
    for name in names:
        started = time.monotonic()
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            rows += importlib.import_module(f"bench.{name}").run()
        except Exception:  # a broken benchmark must not hide the others' figures
            failed += 1
            traceback.print_exc()
        print(f"  {name}: {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    print(render(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
