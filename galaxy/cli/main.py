"""Entry point of the `galaxy` command: wires the noun groups into one fire component."""

from __future__ import annotations

import sys
from typing import Any

import fire

from galaxy.errors import GalaxyError


class Galaxy:
    """Galaxy — a data-center operating system. Nouns: job, pod, agent, user, pool, status, config, keys, dev."""

    def __init__(self) -> None:
        # Imported here so importing this module stays cheap and a broken noun shows up as one error.
        from galaxy.cli.agent import AgentCommands
        from galaxy.cli.config import ConfigCommands
        from galaxy.cli.dev import DevCommands
        from galaxy.cli.job import JobCommands
        from galaxy.cli.keys import KeyCommands
        from galaxy.cli.pod import PodCommands
        from galaxy.cli.pool import PoolCommands
        from galaxy.cli.status import status
        from galaxy.cli.user import UserCommands

        self.job = JobCommands()
        self.pod = PodCommands()
        self.agent = AgentCommands()
        self.user = UserCommands()
        self.pool = PoolCommands()
        self.status = status
        self.config = ConfigCommands()
        self.keys = KeyCommands()
        self.dev = DevCommands()


def split_exec(args: list[str]) -> tuple[list[str], list[str] | None]:
    """``job exec JOB … -- CMD ARGS`` → (the args before ``--``, [CMD, ARGS…]).

    fire reads everything after ``--`` as its own flags (--help, --completion), so the command of
    ``job exec`` is cut off before fire sees it. Any other command line is left alone.
    """
    if len(args) >= 3 and args[:2] == ["job", "exec"] and "--" in args[3:]:
        cut = args.index("--", 3)
        return args[:cut], args[cut + 1:]
    return args, None


def _print_error(err: GalaxyError) -> None:
    # A job file with several problems prints one `error: field: message` line per problem.
    for line in str(err).splitlines() or [type(err).__name__]:
        print(f"error: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; a GalaxyError becomes `error: …` on stderr and exit status 1."""
    args, exec_argv = split_exec(list(sys.argv[1:] if argv is None else argv))
    try:
        component = Galaxy()
        component.job._argv = exec_argv
        result: Any = fire.Fire(component, command=args, name="galaxy")
    except GalaxyError as err:
        _print_error(err)
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
