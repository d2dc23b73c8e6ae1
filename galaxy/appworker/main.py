"""`galaxy-appworker`: PID 1 of every container (started by the Agent, never by hand).

With no arguments it is the AppWorker (env from the Agent and AppMaster; see docs/appworker.md);
``galaxy-appworker -- CMD …`` is the minimal init that runs one command (galaxy/appworker/init.py).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from galaxy.appworker.init import run_init
from galaxy.appworker.link import MasterLink
from galaxy.appworker.reaper import Reaper, set_child_subreaper
from galaxy.appworker.settings import WorkerSettings, take_secrets
from galaxy.appworker.worker import Worker
from galaxy.errors import GalaxyError, InvalidInput
from galaxy.isolate import narrow_inherited_capabilities
from galaxy.mesh import Keypair

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FORWARDED = (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def main(argv: list[str] | None = None) -> int:
    narrow_inherited_capabilities()  # PID 1's own capabilities are not its children's (docs/security.md)
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return run_worker()
    if args[:1] == ["--"]:
        args = args[1:]
    return run_init(args)


def run_worker() -> int:
    secrets = take_secrets(os.environ)  # before anything can start a child
    environ = {**os.environ, **secrets}
    try:
        settings = WorkerSettings.from_environ(environ)
        keypair = _keypair(settings)
    except InvalidInput as err:
        print(f"galaxy-appworker: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s appworker[{settings.pod}] %(levelname)s %(message)s")
    if os.getpid() != 1:
        set_child_subreaper()
    reaper = Reaper(reap_orphans=True)
    link = MasterLink(settings, keypair).start()
    try:
        worker = Worker(settings, link, reaper=reaper).start()
    except GalaxyError as err:
        print(f"galaxy-appworker: error: {err}", file=sys.stderr)
        link.close()
        return 1
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda _sig, _frame: worker.request_shutdown())
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: worker.forward_signal(signum))
    while not worker.finished.wait(1.0):
        pass
    worker.close()
    link.close()
    reaper.stop()
    return 0


def _keypair(settings: WorkerSettings) -> Keypair:
    try:
        return Keypair(settings.worker_public, settings.worker_secret)
    except InvalidInput as err:
        raise InvalidInput(f"not a valid CURVE keypair ({err})", field="GALAXY_WORKER_KEY") from None


if __name__ == "__main__":
    sys.exit(main())
