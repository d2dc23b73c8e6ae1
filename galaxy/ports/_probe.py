"""Is a port free on this host right now? Answered by trying to bind it.

Why a bind test rather than reading ``/proc/net/tcp``: it asks the kernel the exact question the
service will ask later (can I bind this port?), covers TCP and UDP, IPv4 and dual-stack IPv6
listeners, and costs two syscalls. TCP is tried with ``SO_REUSEADDR`` like any server sets, so
a connection of a previous tenant lingering in TIME_WAIT does not make a port look taken, while a
listener does (Linux refuses a second bind next to a LISTEN socket even with ``SO_REUSEADDR``).

The answer is a snapshot: a process outside Galaxy may bind the port a moment later. Ports inside
the Agent's range are protected from that by the ephemeral reservation; ports outside it are not.
The test runs in the network namespace of the calling thread.
"""

from __future__ import annotations

import errno
import socket

from galaxy.ports._errors import PortError

_BUSY = {errno.EADDRINUSE, errno.EACCES}


def port_is_free(port: int, address: str = "0.0.0.0") -> bool:
    """True when both a TCP and a UDP socket can bind ``address:port`` now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno in _BUSY:
                    return False
                raise PortError(f"bind test of port {port} failed: {exc}") from exc
    return True


__all__ = ["port_is_free"]
