"""The mesh envelope: one CBOR map per ZeroMQ message, encoded and checked in this one place.

``{"v": 1, "id": int, "type": "req"|"rep"|"err"|"evt", "method": str, "body": any}``

* ``req`` expects exactly one ``rep`` (body = the handler's result) or ``err`` (body =
  ``GalaxyError.to_wire()``) carrying the same ``id``.
* ``evt`` is one-way; its ``id`` is informational.
* Methods that start with ``_mesh.`` belong to the mesh itself (the heartbeat); handlers cannot
  claim them.

``parse`` never raises anything but :class:`WireError`, whatever bytes it is given, and tells the
caller whether the broken message was a request it can still answer (``reply_id``).
"""

from __future__ import annotations

from typing import Any, Final

import cbor2

from galaxy.errors import GalaxyError, InvalidInput, ProtocolError

_loads = cbor2.loads
_dumps = cbor2.dumps

VERSION: Final = 1
REQ: Final = "req"
REP: Final = "rep"
ERR: Final = "err"
EVT: Final = "evt"
TYPES: Final = frozenset((REQ, REP, ERR, EVT))
RESERVED_PREFIX: Final = "_mesh."
HEARTBEAT_METHOD: Final = "_mesh.hb"
MAX_METHOD: Final = 256
MAX_ID: Final = (1 << 63) - 1
DEFAULT_MAX_FRAME: Final = 1 << 20


class Message:
    """A decoded, validated envelope."""

    __slots__ = ("id", "type", "method", "body")

    def __init__(self, id: int, type: str, method: str, body: Any) -> None:
        self.id = id
        self.type = type
        self.method = method
        self.body = body

    def __repr__(self) -> str:
        return f"Message(id={self.id}, type={self.type!r}, method={self.method!r})"


class WireError(ProtocolError):
    """A frame that is not a valid envelope.

    ``reply_id`` is the id to answer with an ``err`` when the frame is recognisably a request (so
    the caller fails fast instead of timing out); None when no answer is possible.
    """

    def __init__(self, message: str, *, reply_id: int | None = None, method: str = "") -> None:
        super().__init__(message)
        self.reply_id = reply_id
        self.method = method


def encode(msg_id: int, msg_type: str, method: str, body: Any = None) -> bytes:
    """Encode one envelope; ``InvalidInput(field="body")`` if the body is not CBOR-encodable."""
    try:
        return _dumps({"v": VERSION, "id": msg_id, "type": msg_type, "method": method, "body": body})
    except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as err:
        raise InvalidInput(f"body cannot be encoded as CBOR: {err}", field="body") from None


def encode_error(msg_id: int, method: str, err: GalaxyError) -> bytes:
    wire = err.to_wire()
    wire["message"] = str(wire["message"])[:4096]
    return cbor2.dumps({"v": VERSION, "id": msg_id, "type": ERR, "method": method, "body": wire})


HEARTBEAT: Final = encode(0, EVT, HEARTBEAT_METHOD)


def _request_id(obj: dict[Any, Any]) -> tuple[int | None, str]:
    """The id and method to answer a broken message with, if it claims to be a request."""
    msg_id = obj.get("id")
    if obj.get("type") != REQ or type(msg_id) is not int or not 0 <= msg_id <= MAX_ID:
        return None, ""
    method = obj.get("method")
    return msg_id, method[:MAX_METHOD] if type(method) is str else ""


def parse(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Message:
    """Decode and check one frame; raises only :class:`WireError`."""
    try:
        obj = _loads(data)
    except Exception as err:  # the decoder is a boundary: any failure means "not CBOR"
        raise WireError(f"frame is not CBOR: {type(err).__name__}: {err}"[:300]) from None
    if type(obj) is dict and len(data) <= max_frame:  # the fast path: one test per field
        version = obj.get("v")
        msg_id = obj.get("id")
        msg_type = obj.get("type")
        method = obj.get("method")
        if (type(version) is int and version == VERSION and type(msg_id) is int and 0 <= msg_id <= MAX_ID
                and type(msg_type) is str and msg_type in TYPES and type(method) is str
                and len(method) <= MAX_METHOD and "body" in obj):
            return Message(msg_id, msg_type, method, obj["body"])
    raise _diagnose(obj, len(data), max_frame)


def _diagnose(obj: Any, size: int, max_frame: int) -> WireError:
    """Say what is wrong with a decoded frame the fast path refused."""
    if type(obj) is not dict:
        return WireError(f"envelope must be a map, got {type(obj).__name__}")
    reply_id, reply_method = _request_id(obj)
    if size > max_frame:
        return WireError(f"frame of {size} bytes exceeds the {max_frame}-byte limit",
                         reply_id=reply_id, method=reply_method)
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        return WireError(f"unsupported envelope version {version!r:.40} (this peer speaks {VERSION})",
                         reply_id=reply_id, method=reply_method)
    msg_id = obj.get("id")
    if type(msg_id) is not int or not 0 <= msg_id <= MAX_ID:
        return WireError(f"id must be an integer in 0..2**63-1, got {msg_id!r:.40}")
    msg_type = obj.get("type")
    if type(msg_type) is not str or msg_type not in TYPES:
        return WireError(f"type must be one of req, rep, err, evt; got {msg_type!r:.40}")
    method = obj.get("method")
    if type(method) is not str or len(method) > MAX_METHOD:
        return WireError(f"method must be a string of at most {MAX_METHOD} characters", reply_id=reply_id)
    return WireError("envelope has no body", reply_id=reply_id, method=method)


__all__ = [
    "VERSION", "REQ", "REP", "ERR", "EVT", "TYPES", "HEARTBEAT", "HEARTBEAT_METHOD", "RESERVED_PREFIX",
    "DEFAULT_MAX_FRAME", "Message", "WireError", "encode", "encode_error", "parse",
]
