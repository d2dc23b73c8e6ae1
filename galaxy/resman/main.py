"""`galaxy-resman`: one active ResMan per cluster, standbys waiting in ZooKeeper."""

from __future__ import annotations

import sys

from galaxy.daemon.main import replicated_main
from galaxy.resman.service import ResManService


def main(argv: list[str] | None = None) -> int:
    return replicated_main("resman", ResManService, argv)


if __name__ == "__main__":
    sys.exit(main())
