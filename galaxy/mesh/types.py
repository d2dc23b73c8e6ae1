"""The values handlers and callbacks receive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Request:
    """One request or event as a handler sees it.

    ``key`` is the CURVE public key of the connection the message came over (from ZAP's
    ``User-Id``), and ``key_name`` its name in the server's KeyRing: use these, never a field of
    ``body``, to decide what the caller may do. ``peer`` is the sender's routing identity, which
    the peer chose itself; it addresses replies and server-initiated requests, it proves nothing.
    """

    __slots__ = ("peer", "key", "key_name", "method", "body", "id")

    def __init__(self, peer: str, key: str, key_name: str | None, method: str, body: Any, id: int) -> None:
        self.peer = peer
        self.key = key
        self.key_name = key_name
        self.method = method
        self.body = body
        self.id = id

    def __repr__(self) -> str:
        return f"Request(peer={self.peer!r}, key_name={self.key_name!r}, method={self.method!r}, id={self.id})"


@dataclass(frozen=True)
class PeerInfo:
    """A peer connected to a Server, as of the moment it was asked for.

    ``last_seen`` is ``time.monotonic()`` of the last message heard from the peer.
    """

    identity: str
    key: str
    key_name: str | None
    last_seen: float
