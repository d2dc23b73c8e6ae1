"""Command-line entry shared by the daemons: `galaxy-<role> --config FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from galaxy.daemon.config import DaemonConfig, load_config
from galaxy.errors import GalaxyError


def setup_logging(level: str, role: str, ident: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {role}[{ident}] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def daemon_main(role: str, run: Callable[[DaemonConfig], None], argv: list[str] | None = None,
                check: Callable[[DaemonConfig], object] | None = None) -> int:
    """Parse `--config`, validate the file (exit 2 with every problem; `check` validates the role's own
    section the same way), then run the daemon."""
    parser = argparse.ArgumentParser(prog=f"galaxy-{role}", description=f"Galaxy {role} daemon")
    parser.add_argument("--config", "-c", required=True, help="path of the YAML config file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, role)
        if check is not None:
            check(config)
    except GalaxyError as err:
        print(f"galaxy-{role}: error: {err}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, role, config.id)
    try:
        run(config)
    except GalaxyError as err:
        logging.getLogger(role).error("%s", err)
        return 1
    return 0


def replicated_main(role: str, service_factory: Callable[[DaemonConfig], object],
                    argv: list[str] | None = None, check: Callable[[DaemonConfig], object] | None = None) -> int:
    """Entry of a master/standby daemon: campaign, serve `service_factory(config)` while leading."""
    from galaxy.daemon.replica import ReplicatedDaemon

    def run(config: DaemonConfig) -> None:
        daemon = ReplicatedDaemon(config, service_factory(config))  # type: ignore[arg-type]
        daemon.install_signal_handlers()
        daemon.run()

    return daemon_main(role, run, argv, check)
