"""Galaxy's messaging: ZeroMQ ROUTER/DEALER with one CBOR envelope per message, CURVE everywhere.

A :class:`Server` binds a ROUTER and admits only the public keys in its :class:`KeyRing`; a
:class:`Client` connects a DEALER whose routing identity is its stable id. Either side may send
requests (``req`` → ``rep``/``err``) and events (``evt``) over that one connection. Errors raised by
a handler arrive at the caller as the same :mod:`galaxy.errors` type. See ``docs/mesh.md``.
"""

from __future__ import annotations

from galaxy.mesh._common import InternalError, Outcome, new_route
from galaxy.mesh.client import Client
from galaxy.mesh.keys import Keypair, KeyRing, fingerprint
from galaxy.mesh.server import IdentityPolicy, Server
from galaxy.mesh.types import PeerInfo, Request

__all__ = ["Client", "IdentityPolicy", "InternalError", "KeyRing", "Keypair", "Outcome", "PeerInfo", "Request",
           "Server", "fingerprint", "new_route"]
