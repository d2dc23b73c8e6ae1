"""`galaxy-agent`: one per host; makes the containers ResMan asks for (see galaxy.agent.service)."""

from __future__ import annotations

import sys

from galaxy.daemon.main import daemon_main


def main(argv: list[str] | None = None) -> int:
    from galaxy.agent.service import run_agent

    return daemon_main("agent", run_agent, argv)


if __name__ == "__main__":
    sys.exit(main())
