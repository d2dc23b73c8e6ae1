"""`galaxy dev …`: tools for running Galaxy on one machine while developing it."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from galaxy.errors import GalaxyError

POLL = 0.5


class DevCommands:
    """Developer tools: a local ZooKeeper to point daemons at."""

    def zk(self, port: int = 0, tick_ms: int = 500, data_dir: str = "", address: str = "127.0.0.1",
           tls_dir: str = "") -> None:
        """Run a standalone ZooKeeper in the foreground until Ctrl-C or SIGTERM.

        Listens on ``address`` (default 127.0.0.1) and prints the connect string (``ADDRESS:PORT``)
        once it serves. ``port`` 0 picks a free
        port; ``data_dir`` keeps the data there (default: a temp dir removed on exit); ``tick_ms``
        sets the session-timeout granularity (short = fast failover); ``tls_dir`` (holding
        ``zookeeper-ca.pem`` and ``zookeeper-server.pem``) serves TLS only on the port.
        """
        from galaxy.testing.zk import ZooKeeperServer

        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        server = ZooKeeperServer(tick_ms=tick_ms, port=port, data_dir=data_dir or None, address=address,
                                 tls_dir=tls_dir or None)
        try:
            server.start()
            print(server.hosts, flush=True)
            while not stop.wait(POLL):
                if not server.running:
                    raise GalaxyError(f"ZooKeeper exited on its own; log tail:\n{server.log_text()[-2000:]}")
        finally:
            server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
