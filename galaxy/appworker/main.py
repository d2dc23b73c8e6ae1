"""`galaxy-appworker`: PID 1 of every container (started by the Agent, never by hand)."""

from __future__ import annotations

import sys

from galaxy.appworker.init import run_init


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    return run_init(args)


if __name__ == "__main__":
    sys.exit(main())
