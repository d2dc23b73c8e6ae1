"""Entry point of the `galaxy` command: wires the noun groups into one fire component."""

from __future__ import annotations

import sys
from typing import Any

import fire

from galaxy.errors import GalaxyError


class Galaxy:
    """Galaxy — a data-center operating system. Nouns: job, keys, dev."""

    def __init__(self) -> None:
        # Imported here so `galaxy --help` stays fast and a broken noun cannot break the others.
        from galaxy.cli.dev import DevCommands
        from galaxy.cli.job import JobCommands
        from galaxy.cli.keys import KeyCommands

        self.job = JobCommands()
        self.keys = KeyCommands()
        self.dev = DevCommands()


def main(argv: list[str] | None = None) -> int:
    """Run one command; a GalaxyError becomes `error: …` on stderr and exit status 1."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result: Any = fire.Fire(Galaxy, command=args, name="galaxy")
    except GalaxyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as exit_:  # fire's own usage errors (FireExit) and commands that set a status
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 0


if __name__ == "__main__":
    sys.exit(main())
