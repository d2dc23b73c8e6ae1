"""`galaxy-appmaster`: one active AppMaster per cluster, standbys waiting in ZooKeeper."""

from __future__ import annotations

import sys

from galaxy.appmaster.service import AppMasterService
from galaxy.daemon.main import replicated_main


def main(argv: list[str] | None = None) -> int:
    return replicated_main("appmaster", AppMasterService, argv)


if __name__ == "__main__":
    sys.exit(main())
