"""Opening a ZooKeeper session the way every Galaxy process needs it.

One started KazooClient per process is the norm (a session is the unit of liveness: the leader's
lock, its leader record and its published instances all vanish together when it dies). A chroot in
the connect string (``host:port/some/prefix``) is created if missing, so a fresh namespace works
without a separate setup step.

With a ``credential`` (Galaxy's daemons) the session authenticates with the ``digest`` scheme and
every znode it creates carries the ACL of its path (``galaxy.coord._acl``); without one (SDK, CLI,
AppWorkers) it reads what the world may read: leader records and naming.
"""

from __future__ import annotations

import ssl
import warnings
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NodeExistsError
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler

from galaxy.coord._acl import AUTH_FIELD, Credential, GalaxyZooKeeper
from galaxy.coord._retry import retry_call
from galaxy.coord._tls import check_ca_file
from galaxy.errors import InvalidInput, PermissionDenied, Unreachable


def connect(hosts: str, *, timeout: float = 10.0, session_timeout: float = 10.0,
            credential: Credential | None = None, ca: str | None = None) -> KazooClient:
    """A started KazooClient on ``hosts``, or galaxy.errors.Unreachable naming them after ``timeout`` s.

    ``session_timeout`` is what the client asks for; the server clamps it to [2, 20] ticks. It is
    also how long a dead leader keeps its lock, i.e. the failover time.

    ``ca`` (a PEM file: the cluster's ZooKeeper CA) speaks TLS to the servers' secure client port
    and accepts only a server whose certificate that CA signed for the address or name written in
    ``hosts`` (``galaxy.coord._tls``); None or "" = plain TCP.
    """
    if not isinstance(hosts, str) or not hosts.strip():
        raise InvalidInput("expected a ZooKeeper connect string like 'host:2181[,host:2181][/chroot]'",
                           field="hosts")
    if timeout <= 0:
        raise InvalidInput("must be positive", field="timeout")
    if session_timeout <= 0:
        raise InvalidInput("must be positive", field="session_timeout")
    client = GalaxyZooKeeper(hosts=hosts.strip(), timeout=session_timeout,
                             connection_retry={"max_tries": -1, "max_delay": 1.0}, credential=credential,
                             handler=ZooKeeperHandler(host_connect_timeout(hosts, session_timeout)),
                             **_tls_args(ca))
    try:
        with warnings.catch_warnings():
            # kazoo warns about a missing chroot at start; it is created just below.
            warnings.simplefilter("ignore", UserWarning)
            client.start(timeout=timeout)
    except KazooTimeoutError as err:
        client.stop()
        client.close()
        raise Unreachable(f"cannot connect to ZooKeeper at {hosts} within {timeout:g} s") from err
    except AuthFailedError as err:
        client.stop()
        client.close()
        raise PermissionDenied(f"ZooKeeper at {hosts} refused the credential", field=AUTH_FIELD) from err
    try:
        _ensure_chroot(client, timeout)
    except BaseException:
        client.stop()
        client.close()
        raise
    return client


def _tls_args(ca: str | None) -> dict[str, Any]:
    if not ca:
        return {}
    return {"use_ssl": True, "ca": check_ca_file(ca), "verify_certs": True, "check_hostname": True}


def host_connect_timeout(hosts: str, session_timeout: float) -> float:
    """How long a TCP connect to one server of ``hosts`` may take: ZooKeeper's own client gives each
    ``session_timeout / number of servers`` (here at least 1 s), so a silent server leaves time for
    the others within one session timeout."""
    count = max(1, len([h for h in hosts.strip().split("/", 1)[0].split(",") if h.strip()]))
    return min(session_timeout, max(1.0, session_timeout / count))


class ZooKeeperHandler(SequentialThreadingHandler):
    """kazoo's threading handler, with two fixes.

    **Each TCP connect is bounded by** ``connect_timeout``. kazoo gives every connect the whole
    session timeout. With an ensemble, a server that is down without a reset (host off, cable cut)
    then eats it all: a leader that tries it first while reconnecting loses its leadership, and a
    CLI call that tries it first gives up before asking the servers that work (seen with one of
    three servers cut off: a third of calls failed).

    **A TLS socket with decrypted data waiting counts as readable.** kazoo's connection loop waits in
    ``select`` on the raw socket after reading one response; over TLS the next responses may already
    sit in the SSL object's buffer, which ``select`` cannot see, so they waited for the next packet
    or the ping timer (the bug Kafka fixed as KAFKA-13559). Measured here: ResMan's placement burst
    ran at ~0.8x of plain TCP over TLS before this.
    """

    def __init__(self, connect_timeout: float) -> None:
        super().__init__()
        self.connect_timeout = connect_timeout

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        if timeout is not None:
            kwargs["timeout"] = min(timeout, self.connect_timeout)
        return super().create_connection(*args, **kwargs)

    def select(self, rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None
               ) -> tuple[list[Any], list[Any], list[Any]]:
        pending = [s for s in rlist if isinstance(s, ssl.SSLSocket) and s.pending() > 0]
        if not pending:
            return super().select(rlist, wlist, xlist, timeout)
        ready, writable, errored = super().select(rlist, wlist, xlist, 0)
        return pending + [s for s in ready if s not in pending], writable, errored


def _ensure_chroot(client: KazooClient, deadline: float) -> None:
    chroot = client.chroot
    if not chroot or retry_call(lambda: client.exists("/"), deadline=deadline) is not None:
        return
    # Creating the chroot itself needs un-prefixed paths; the client is not shared yet, so switch
    # its prefix off for these calls only.
    client.chroot = ""
    try:
        prefix = ""
        for part in chroot.strip("/").split("/"):
            prefix += "/" + part
            try:
                retry_call(lambda p=prefix: client.create(p), deadline=deadline)  # type: ignore[misc]
            except NodeExistsError:
                pass
    finally:
        client.chroot = chroot
