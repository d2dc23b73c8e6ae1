"""`galaxy-resman`: one active ResMan per cluster, standbys waiting in ZooKeeper."""

from __future__ import annotations

import sys

from galaxy.daemon.main import replicated_main
from galaxy.resman.service import ResManService
from galaxy.resman.settings import ResManSettings


def main(argv: list[str] | None = None) -> int:
    return replicated_main("resman", ResManService, argv, check=lambda config: ResManSettings.load(config.resman))


if __name__ == "__main__":
    sys.exit(main())
