"""The one rooted error hierarchy of Galaxy.

Every failure a caller can act on has its own type, and every type has a stable wire ``code`` so an
error raised in one process arrives as the same type in another (the mesh carries
``{"code", "message", "field"}`` and, when an error has figures a program may want — a quota's
asked/used/limit — ``"details"``)::

    GalaxyError
    ├── InvalidInput          code "invalid"      bad argument / job file / message field (names it)
    ├── NotFound              code "not_found"    no such job, pod, host, user, key
    ├── Conflict              code "conflict"     exists already, wrong state for the operation
    ├── PermissionDenied      code "denied"       the caller's key lacks the authority
    │   └── IdentityRefused   code "identity"     the routing identity claimed is bound to another key
    │                                             (or reserved: a host's name) — use your own
    ├── QuotaExceeded         code "quota"        a user's quota would be passed
    ├── ResourceUnavailable   code "unavailable"  not enough cpu, memory, disk, or the port is taken
    ├── HostError             code "host"         a kernel operation failed (cgroup, loop, iptables)
    ├── ProtocolError         code "protocol"     a malformed message (bad CBOR, version, types)
    ├── InternalError         code "internal"     a bug on the serving side; the server lives on
    └── RetryableError                            try again, maybe elsewhere: nothing was changed
        ├── Timeout           code "timeout"      no reply in time
        ├── Unreachable       code "unreachable"  no connection to the peer / no leader known
        └── NotLeader         code "not_leader"   the peer is a standby; find the leader again
"""

from __future__ import annotations

from typing import Any, ClassVar


class GalaxyError(Exception):
    """Root of every error Galaxy raises on purpose."""

    code: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def __str__(self) -> str:
        if self.field and not self.message.startswith(self.field):
            return f"{self.field}: {self.message}"
        return self.message

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details:
            wire["details"] = self.details
        return wire

    @staticmethod
    def from_wire(body: Any) -> GalaxyError:
        """Rebuild the error a peer sent; an unknown code stays a plain GalaxyError."""
        if not isinstance(body, dict):
            return ProtocolError(f"malformed error body: {body!r:.200}")
        code = body.get("code")
        message = body.get("message")
        field = body.get("field")
        cls = _BY_CODE.get(code if isinstance(code, str) else "", GalaxyError)
        details = body.get("details")
        err = cls(str(message) if message is not None else str(code),
                  field=field if isinstance(field, str) else None,
                  details=details if isinstance(details, dict) else None)
        if cls is GalaxyError and isinstance(code, str):
            err.code = code  # type: ignore[misc]  # keep the peer's code visible
        return err


class InvalidInput(GalaxyError):
    code = "invalid"


class NotFound(GalaxyError):
    code = "not_found"


class Conflict(GalaxyError):
    code = "conflict"


class PermissionDenied(GalaxyError):
    code = "denied"


class IdentityRefused(PermissionDenied):
    """A connection claimed a routing identity that is not its own: one another key holds (or held a
    moment ago), or one reserved for someone else (a host's name is its Agent's, a pod's is the pod's).

    A subclass of PermissionDenied, so code that handles denials handles this one; its own code lets
    a caller tell "pick your own identity / use the right key" from "your key may not do this"."""

    code = "identity"


class QuotaExceeded(GalaxyError):
    code = "quota"


class ResourceUnavailable(GalaxyError):
    code = "unavailable"


class HostError(GalaxyError):
    code = "host"


class ProtocolError(GalaxyError):
    code = "protocol"


class InternalError(GalaxyError):
    """The serving side failed in a way it did not foresee (a bug); details are in its log."""

    code = "internal"


class RetryableError(GalaxyError):
    """Nothing was changed by the failed call; the same call may succeed later."""

    code = "retryable"
    retryable = True


class Timeout(RetryableError):
    code = "timeout"


class Unreachable(RetryableError):
    code = "unreachable"


class NotLeader(RetryableError):
    code = "not_leader"


def _codes() -> dict[str, type[GalaxyError]]:
    found: dict[str, type[GalaxyError]] = {}
    stack: list[type[GalaxyError]] = [GalaxyError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


_BY_CODE = _codes()

__all__ = [
    "GalaxyError", "InvalidInput", "NotFound", "Conflict", "PermissionDenied", "IdentityRefused", "QuotaExceeded",
    "ResourceUnavailable", "HostError", "ProtocolError", "InternalError", "RetryableError", "Timeout", "Unreachable",
    "NotLeader",
]
