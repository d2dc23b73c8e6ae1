"""What a container is made of, in plain values, and the checks that run before anything is made.

Every value is checked up front and a bad one raises ``InvalidInput`` naming its field, so a launch that
fails for a bad argument has created nothing; what can only fail in the kernel (an exec, a mount on a
read-only path) fails later as ``IsolateError`` and is cleaned up by ``launch``.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from dataclasses import dataclass, field

from galaxy.errors import InvalidInput
from galaxy.isolate._caps import normalise_capability
from galaxy.isolate._cgroup import CgroupLimits, check_name

WORK_DIR_INSIDE = "/galaxy/work"
"""Where the container's writable work dir appears inside; the cwd of PID 1."""

HOST_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc")

RESERVED_INSIDE = ("/proc", "/dev", "/tmp", WORK_DIR_INSIDE)
"""Container paths Galaxy mounts itself; a caller's mount may go below them only in the work dir."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class BindMount:
    """A host path shown inside the container; ``readonly`` makes it (and its submounts) read-only."""

    host_path: str
    container_path: str
    readonly: bool = False


@dataclass(frozen=True)
class UserNamespace:
    """Run the container in its own user namespace: root inside is ``root_uid``/``root_gid`` outside (an
    id no host file or process uses), and the service user ``uid``/``gid`` is mapped to itself, so its
    disks, work dir and quotas work as without one. Nothing else of the host is mapped: every host
    file shows as owned by ``nobody`` and no capability inside applies to it."""

    root_uid: int
    root_gid: int
    uid: int
    gid: int

    def maps(self) -> dict[str, list[tuple[int, int]]]:
        """``{"uid": [(inside, outside), …], "gid": …}`` for ``/proc/<pid>/{uid,gid}_map``."""
        uids = [(0, self.root_uid)] + ([(self.uid, self.uid)] if self.uid != 0 else [])
        gids = [(0, self.root_gid)] + ([(self.gid, self.gid)] if self.gid != 0 else [])
        return {"uid": uids, "gid": gids}


@dataclass(frozen=True)
class ContainerSpec:
    """One container, in plain values. ``state_dir`` is a host dir the Agent owns for this container
    (rootfs mount point, pid and status files, console log); ``work_dir`` is shown read-write at
    ``/galaxy/work`` inside and is PID 1's cwd. ``system_mounts`` are host dirs bound read-only at the
    same path (see :func:`default_system_mounts`); ``hidden`` are paths inside them masked in every
    container (see :func:`host_secrets`). ``run_as`` starts PID 1 as that (uid, gid) instead of root.
    ``capabilities`` are all any process inside may hold beyond PID 1's own (names without ``CAP_``;
    default none). ``userns`` puts the container in a user namespace. ``hostname`` defaults to the id."""

    id: str
    cgroup: str
    limits: CgroupLimits
    argv: list[str]
    env: dict[str, str]
    state_dir: str
    work_dir: str
    mounts: list[BindMount] = field(default_factory=list)
    system_mounts: list[str] = field(default_factory=list)
    run_as: tuple[int, int] | None = None
    hostname: str | None = None
    capabilities: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    userns: UserNamespace | None = None

    @property
    def effective_hostname(self) -> str:
        return self.hostname or self.id


def _abs_existing(path: object, what: str) -> str:
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        raise InvalidInput(f"must be an absolute path, got {path!r}", field=what)
    if not os.path.exists(path):
        raise InvalidInput(f"{path} does not exist on this host", field=what)
    return path


def _container_path(path: object, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise InvalidInput(f"must be an absolute path, got {path!r}", field=what)
    if any(part in (".", "..") for part in path.split("/")) or os.path.normpath(path) != path:
        raise InvalidInput(f"must be a normalised path without '.' or '..', got {path!r}", field=what)
    if path == "/":
        raise InvalidInput("cannot mount over the container's root", field=what)
    for reserved in RESERVED_INSIDE:
        if reserved == WORK_DIR_INSIDE:
            if path == reserved:
                raise InvalidInput(f"{reserved} is the container's work dir", field=what)
        elif path == reserved or path.startswith(reserved + "/"):
            raise InvalidInput(f"{reserved} is made by Galaxy inside every container", field=what)
    return path


def validate_spec(spec: ContainerSpec) -> None:
    """Raise ``InvalidInput`` naming the first bad field; check everything that needs no kernel."""
    if not isinstance(spec.id, str) or not _ID.match(spec.id):
        raise InvalidInput(f"container id must match {_ID.pattern}, got {spec.id!r}", field="id")
    check_name(spec.cgroup, field="cgroup")
    if "/" not in spec.cgroup:
        raise InvalidInput("cgroup must be <parent>/<name> so Agents never collide", field="cgroup")
    if not isinstance(spec.limits, CgroupLimits):
        raise InvalidInput("limits must be a CgroupLimits", field="limits")
    if not isinstance(spec.argv, (list, tuple)) or not spec.argv \
            or not all(isinstance(a, str) and "\0" not in a for a in spec.argv) or not spec.argv[0]:
        raise InvalidInput("argv must be a non-empty list of strings", field="argv")
    if not isinstance(spec.env, dict):
        raise InvalidInput("env must be a dict of str to str", field="env")
    for key, value in spec.env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key \
                or not isinstance(value, str) or "\0" in value:
            raise InvalidInput(f"bad environment entry {key!r}", field=f"env.{key}")
    _abs_existing(spec.state_dir, "state_dir")
    if not os.path.isdir(spec.state_dir):
        raise InvalidInput(f"{spec.state_dir} is not a directory", field="state_dir")
    _abs_existing(spec.work_dir, "work_dir")
    if not os.path.isdir(spec.work_dir):
        raise InvalidInput(f"{spec.work_dir} is not a directory", field="work_dir")
    for i, path in enumerate(spec.system_mounts):
        _abs_existing(path, f"system_mounts[{i}]")
        if os.path.normpath(path) == "/":
            raise InvalidInput("the host root cannot be a system mount", field=f"system_mounts[{i}]")
    for i, mount in enumerate(spec.mounts):
        if not isinstance(mount, BindMount):
            raise InvalidInput("must be a BindMount", field=f"mounts[{i}]")
        _abs_existing(mount.host_path, f"mounts[{i}].host_path")
        _container_path(mount.container_path, f"mounts[{i}].container_path")
        if not isinstance(mount.readonly, bool):
            raise InvalidInput("readonly must be a bool", field=f"mounts[{i}].readonly")
    if spec.run_as is not None:
        if not (isinstance(spec.run_as, tuple) and len(spec.run_as) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32 - 1
                        for x in spec.run_as)):
            raise InvalidInput(f"run_as must be (uid, gid), got {spec.run_as!r}", field="run_as")
    if spec.hostname is not None and (not isinstance(spec.hostname, str) or not _ID.match(spec.hostname)):
        raise InvalidInput(f"hostname must match {_ID.pattern}", field="hostname")
    for i, name in enumerate(spec.capabilities):
        if normalise_capability(name, f"capabilities[{i}]") != name:
            raise InvalidInput(f"write {normalise_capability(name)!r}", field=f"capabilities[{i}]")
    for i, path in enumerate(spec.hidden):
        if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path:
            raise InvalidInput(f"must be a normalised absolute path, got {path!r}", field=f"hidden[{i}]")
    if spec.userns is not None:
        ns = spec.userns
        ids = (ns.root_uid, ns.root_gid, ns.uid, ns.gid)
        if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32 - 1 for x in ids):
            raise InvalidInput(f"user namespace ids must be uids/gids, got {ids!r}", field="userns")
        if ns.root_uid == 0 or ns.root_gid == 0 or ns.root_uid == ns.uid or ns.root_gid == ns.gid:
            raise InvalidInput("root of the user namespace must be an unused unprivileged id outside, "
                               f"not 0 nor the service's own (got {ns.root_uid}:{ns.root_gid})", field="userns")


def default_system_mounts() -> list[str]:
    """Host dirs a container needs to run this Python and the galaxy package (the AppWorker).

    The usual system dirs, plus ``sys.prefix`` (a virtualenv), ``sys.base_prefix`` and the prefix of the
    real interpreter binary (a pyenv or /opt install), plus galaxy's package dir (an editable install
    lives outside site-packages) and the import dirs on ``sys.path``. Missing dirs are dropped, and so is
    any dir that another entry (not a symlink) already covers."""
    import galaxy

    # sys.path beyond its first entry (the script's dir or the cwd) holds the import dirs a `.pth` file
    # added, e.g. a release virtualenv reading its dependencies from a shared site-packages.
    candidates = [*HOST_SYSTEM_DIRS, sys.prefix, sys.base_prefix,
                  os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
                  os.path.dirname(os.path.abspath(galaxy.__file__)),
                  *(p for p in sys.path[1:] if p and os.path.isabs(p) and os.path.isdir(p))]
    existing: list[str] = []
    for path in candidates:
        path = os.path.normpath(path)
        if path != "/" and os.path.lexists(path) and path not in existing:
            existing.append(path)
    covering = [p for p in existing if not os.path.islink(p)]
    return [p for p in existing
            if not any(p != other and p.startswith(other.rstrip("/") + "/") for other in covering)]


SECRET_PATHS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/galaxy",
                "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d", "/etc/zookeeper")
"""Hidden in every container even where they are world-readable: Galaxy's and ZooKeeper's own config
and keys, and the host's login secrets."""


def host_secrets(system_mounts: list[str]) -> tuple[str, ...]:
    """Paths below ``/etc`` (when it is a system mount) to mask in every container: ``SECRET_PATHS`` and
    every entry that the host keeps from other users (not world-readable, or a dir not world-searchable).
    The rule is the host's own: what an ordinary host user may not read, a container may not either,
    whatever its uid. Computed once per Agent (a walk of /etc costs a few ms); a secret made later
    under a dir already listed is covered by its dir."""
    if "/etc" not in [os.path.normpath(p) for p in system_mounts]:
        return ()
    found: list[str] = [p for p in SECRET_PATHS if os.path.lexists(p)]
    for top, dirs, files in os.walk("/etc"):
        for name in list(dirs):
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_mode & 0o005) != 0o005 and not os.path.islink(path):
                found.append(path)
                dirs.remove(name)  # masked whole: nothing below needs a mask of its own
        for name in files:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o100000 and not st.st_mode & 0o004:
                found.append(path)
    unique = sorted(set(found))
    return tuple(p for p in unique if not any(p.startswith(q + "/") for q in unique))


def user_namespaces_available() -> bool:
    """Whether this kernel lets root make user namespaces (``user.max_user_namespaces`` > 0)."""
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read()) > 0
    except (OSError, ValueError):
        return False


def resolve_user(name: str) -> tuple[int, int]:
    """(uid, gid) of a host user, by name or numeric uid; ``InvalidInput(field="user")`` if unknown."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"user must be a non-empty string, got {name!r}", field="user")
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise InvalidInput(f"no such user on this host: {name!r}", field="user") from None
    return entry.pw_uid, entry.pw_gid


__all__ = ["BindMount", "ContainerSpec", "RESERVED_INSIDE", "UserNamespace", "default_system_mounts", "host_secrets", "resolve_user",
           "user_namespaces_available",
           "validate_spec", "WORK_DIR_INSIDE"]
