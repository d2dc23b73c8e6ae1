"""Where everything of one cluster lives in ZooKeeper, in one place.

Every znode path Galaxy uses is built here, so the layout (DESIGN.md) cannot drift between
components, and every name that becomes a path segment is checked once: a job called ``a/b`` or
``..`` must be refused, not silently turned into a different node.
"""

from __future__ import annotations

import re

from galaxy.errors import InvalidInput

ROLES = ("resman", "appmaster")
MAX_SEGMENT = 255
# '/' and what ZooKeeper refuses in a path name: control characters and these Unicode ranges.
_FORBIDDEN = re.compile("[/\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def check_segment(value: object, field: str) -> str:
    """Return ``value`` if it is usable as one znode name, else raise InvalidInput naming ``field``.

    Every state write checks its key, so the common (valid) case is one compiled-regex scan; the
    checks below it only run to say what is wrong."""
    if type(value) is str and 0 < len(value) <= MAX_SEGMENT and value not in (".", "..") \
            and _FORBIDDEN.search(value) is None:
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"expected a string, got {type(value).__name__}", field=field)
    if not value:
        raise InvalidInput("must not be empty", field=field)
    if len(value) > MAX_SEGMENT:
        raise InvalidInput(f"longer than {MAX_SEGMENT} characters", field=field)
    if "/" in value:
        raise InvalidInput(f"must not contain '/': {value!r}", field=field)
    if value in (".", ".."):
        raise InvalidInput(f"{value!r} is not a valid name", field=field)
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xF8FF or ord(ch) >= 0xFFF0
           for ch in value):
        # ZooKeeper refuses control characters and these Unicode ranges in path names.
        raise InvalidInput(f"contains a character ZooKeeper does not allow: {value!r}", field=field)
    return value


def world_readable(path: str) -> bool:
    """Whether ``path`` (relative to the chroot) is one clients may read without the daemons'
    credential: a leader record (``/galaxy/<cluster>/<role>/leader``) or anything under
    ``/galaxy/<cluster>/naming``. Clients (SDK, CLI, AppWorkers in tenant containers) need exactly
    these to find a leader and resolve instances; everything else is the daemons' alone."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "galaxy":
        return False
    return parts[2] == "naming" or (len(parts) == 4 and parts[2] in ROLES and parts[3] == "leader")


def check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidInput(f"expected one of {', '.join(ROLES)}, got {role!r}", field="role")
    return role  # type: ignore[return-value]


class Paths:
    """The znode layout of cluster ``cluster``: ``/galaxy/<cluster>/…``."""

    __slots__ = ("cluster", "root")

    def __init__(self, cluster: str) -> None:
        self.cluster = check_segment(cluster, "cluster")
        self.root = f"/galaxy/{cluster}"

    def __repr__(self) -> str:
        return f"Paths({self.cluster!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and other.cluster == self.cluster

    def __hash__(self) -> int:
        return hash(("Paths", self.cluster))

    def election(self, role: str) -> str:
        """The lock directory the replicas of ``role`` campaign in."""
        return f"{self.root}/{check_role(role)}/election"

    def leader(self, role: str) -> str:
        """The ephemeral record of the current holder of ``role``: endpoint and public key."""
        return f"{self.root}/{check_role(role)}/leader"

    def state(self, kind: str | None = None, key: str | None = None) -> str:
        """Durable state of the active leader: ``state``, ``state/<kind>``, or ``state/<kind>/<key>``."""
        if kind is None:
            if key is not None:
                raise InvalidInput("a key needs a kind", field="kind")
            return f"{self.root}/state"
        base = f"{self.root}/state/{check_segment(kind, 'kind')}"
        return base if key is None else f"{base}/{check_segment(key, 'key')}"

    def naming(self, job: str | None = None, pod: str | None = None) -> str:
        """Where instances are published: ``naming``, ``naming/<job>``, or ``naming/<job>/<pod>``."""
        if job is None:
            if pod is not None:
                raise InvalidInput("a pod needs a job", field="job")
            return f"{self.root}/naming"
        base = f"{self.root}/naming/{check_segment(job, 'job')}"
        return base if pod is None else f"{base}/{check_segment(pod, 'pod')}"

    def trace(self, kind: str, key: str) -> str:
        """The bounded event ring of one object (a job's, a pod's, a host's last events)."""
        return f"{self.root}/trace/{check_segment(kind, 'kind')}/{check_segment(key, 'key')}"
