"""The values handlers and callbacks receive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Request:
    """One request or event as a handler sees it.

    ``key`` is the CURVE public key of the connection the message came over (from ZAP's
    ``User-Id``), and ``key_name`` its name in the server's KeyRing: use these, never a field of
    ``body``, to decide what the caller may do. ``peer`` is the sender's routing identity: the
    server binds it to the key that holds it (another key cannot claim it), but any identity not
    yet held is free to the first key that claims it, so it proves only "this key, under this
    name" — check ``key_name`` against it where a name means something (a host's, a pod's).
    ``conn`` numbers the connection on the server (0 on the client side): two connections of one
    key under one identity (a pod's job key is shared by every pod of the job) tell apart by it.
    """

    __slots__ = ("peer", "key", "key_name", "method", "body", "id", "conn")

    def __init__(self, peer: str, key: str, key_name: str | None, method: str, body: Any, id: int,
                 conn: int = 0) -> None:
        self.peer = peer
        self.key = key
        self.key_name = key_name
        self.method = method
        self.body = body
        self.id = id
        self.conn = conn

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
