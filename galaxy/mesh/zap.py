"""The ZAP (ZeroMQ Authentication Protocol, RFC 27) handler that admits only keys in a KeyRing.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of the socket's context about every
CURVE handshake. We answer from the server's own I/O thread (a REP socket in its poller) instead of
a separate authenticator thread: the answer is one set lookup, and each Server has its own context,
so two Servers in one process never fight over the ZAP endpoint. The reply's User-Id is the
client's public key in z85; libzmq then stamps it on every message of that connection as the
``User-Id`` property, which is how a Server learns which key sent a message.
"""

from __future__ import annotations

import logging

import zmq
from zmq.utils import z85

from galaxy.mesh.keys import KeyRing

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"
DOMAIN = b"galaxy"

log = logging.getLogger("galaxy.mesh")


class ZapHandler:
    """Answers ZAP requests for one context; call :meth:`handle` when its socket is readable."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], keyring: KeyRing, stats: dict[str, int],
                 name: str) -> None:
        self._keyring = keyring
        self._stats = stats
        self._name = name
        stats.setdefault("zap_allowed", 0)
        stats.setdefault("zap_denied", 0)
        self.socket = ctx.socket(zmq.REP)
        self.socket.linger = 0
        self.socket.bind(ZAP_ENDPOINT)

    def handle(self) -> None:
        sock = self.socket
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            sock.send_multipart(self._answer(frames))

    def _answer(self, frames: list[bytes]) -> list[bytes]:
        if len(frames) < 6:
            return [ZAP_VERSION, frames[1] if len(frames) > 1 else b"", b"500", b"malformed ZAP request",
                    b"", b""]
        version, request_id, domain, address, _identity, mechanism, *credentials = frames
        if version != ZAP_VERSION:
            return [ZAP_VERSION, request_id, b"500", b"unsupported ZAP version", b"", b""]
        if mechanism != b"CURVE" or domain != DOMAIN or len(credentials) != 1 or len(credentials[0]) != 32:
            return self._deny(request_id, address, "CURVE required")
        key = z85.encode(credentials[0])
        if key.decode("ascii") not in self._keyring:
            return self._deny(request_id, address, f"unknown key {key.decode('ascii')}")
        self._stats["zap_allowed"] += 1
        return [ZAP_VERSION, request_id, b"200", b"OK", key, b""]

    def _deny(self, request_id: bytes, address: bytes, why: str) -> list[bytes]:
        self._stats["zap_denied"] += 1
        log.debug("%s: refused a connection from %s: %s", self._name,
                 address.decode("ascii", "replace") or "local", why)
        return [ZAP_VERSION, request_id, b"400", why.encode()[:255], b"", b""]

    def close(self) -> None:
        self.socket.close(0)
