"""A pool's policy: what jobs in one pool may ask of their hosts beyond the confined default.

Every container starts with nothing (docs/tenancy.md, "Pool policy"): its service runs as a user who
is not root, sees no host directory but what Galaxy itself binds, fetches no package and holds no
capability. An administrator widens that per pool, in one record ``state/policies/<pool>``:

- ``root_users``: Galaxy users (key names; ``admin`` for the root administrator key) whose jobs may
  run their service as root (``user: root``, uid 0, or a user whose primary group is 0);
- ``host_paths``: host directories a job may bind (``resources.mounts[].host``), each read-only
  unless the rule says ``writable``; a mount is allowed at or below a rule's path, compared by path
  components (``/srv/data`` allows ``/srv/data/x``, never ``/srv/database``);
- ``package_sources``: ``file:///dir`` directories a ``file://`` package must lie below, and
  ``http(s)://host[:port][/prefix]`` origins an http(s) package must come from;
- ``capabilities``: Linux capabilities a job may add (``capabilities:`` in the job file).

Some host paths are never bound whatever a policy says (`DENIED_HOST_PATHS`): ``/`` and Galaxy's own
keys and state, the kernel's filesystems, ``/boot``, ``/root`` and the password hashes. A mount at or
below one of them, or above one (``/etc`` holds ``/etc/shadow``), is refused; so is a policy rule or a
``file://`` source at or below one (a source is bound into every container of the pool, so it may not
hold one either).

The AppMaster checks a job against its pool's policy before anything is written (`check_policy`); the
Agent checks each container again against the policy of the pool its host is in (`check_container`).
A refusal is a ``PermissionDenied`` naming the job-file field, the pool and the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from galaxy.errors import InvalidInput, PermissionDenied
from galaxy.isolate import normalise_capability
from galaxy.spec import JobSpec
from galaxy.tenancy.model import check_user_name

POLICIES = "policies"          # state/policies/<pool>

ROOT_ADMIN = "admin"           # the root administrator key's name: may be listed in root_users too
RULES = ("root_users", "host_paths", "package_sources", "capabilities")
DENIED_HOST_PATHS = ("/etc/galaxy", "/var/lib/galaxy", "/proc", "/sys", "/dev", "/boot", "/root",
                     "/etc/shadow", "/etc/gshadow")
MAX_ENTRIES = 256              # per rule: a policy is a short list an administrator reads
MAX_TEXT = 4096
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostPathRule:
    """Jobs may bind ``path`` or anything below it; read-write only when ``writable``."""

    path: str
    writable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "writable": self.writable}


@dataclass(frozen=True)
class PoolPolicy:
    """One pool's policy; every rule empty (the default) allows nothing. Build with `from_dict`."""

    root_users: tuple[str, ...] = ()
    host_paths: tuple[HostPathRule, ...] = ()
    package_sources: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"root_users": list(self.root_users), "host_paths": [r.to_dict() for r in self.host_paths],
                "package_sources": list(self.package_sources), "capabilities": list(self.capabilities)}

    @classmethod
    def from_dict(cls, raw: Any, where: str = "") -> PoolPolicy:
        """Validate and normalise (sorted, no duplicates); ``InvalidInput`` names the bad field.

        Fields other than the four rules are refused, except a stored record's ``pool``, ``updated``
        and ``by`` (`policy_record` writes them)."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise InvalidInput("expected a map of root_users, host_paths, package_sources, capabilities",
                               field=where or "policy")
        unknown = set(raw) - set(RULES) - {"pool", "updated", "by"}
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; expected "
                               f"{', '.join(RULES)}", field=where or "policy")
        return cls(root_users=_root_users(raw.get("root_users"), _at(where, "root_users")),
                   host_paths=_host_paths(raw.get("host_paths"), _at(where, "host_paths")),
                   package_sources=_sources(raw.get("package_sources"), _at(where, "package_sources")),
                   capabilities=_capabilities(raw.get("capabilities"), _at(where, "capabilities")))

    # ---- what it allows ----------------------------------------------------------------------------
    def allows_root(self, owner: str) -> bool:
        return owner in self.root_users

    def host_path_rule(self, path: str, *, writable: bool) -> HostPathRule | None:
        """The rule that lets a job bind the normalised ``path`` (read-write when ``writable``)."""
        for rule in self.host_paths:
            if at_or_below(path, rule.path) and (rule.writable or not writable):
                return rule
        return None

    def allows_package(self, url: str) -> bool:
        return package_problem(self, url) is None

    def file_dirs(self) -> tuple[str, ...]:
        """The ``file://`` source directories (the Agent binds each read-only into the pool's containers)."""
        return tuple(sorted(urlsplit(s).path for s in self.package_sources if s.startswith("file://")))


def policy_record(pool: str, policy: PoolPolicy, by: str, when: float) -> dict[str, Any]:
    """What ``state/policies/<pool>`` holds: the rules, the pool, when and by whom they were set."""
    return {**policy.to_dict(), "pool": pool, "updated": when, "by": by}


def policy_reply(pool: str, record: dict[str, Any] | None) -> dict[str, Any]:
    """``pool.policy.show``/``set``'s answer: the rules (all empty without a record), ``updated``,
    ``by`` and ``denied`` (the built-in deny list, beside ``/``)."""
    policy = PoolPolicy.from_dict(record or {})
    record = record or {}
    return {"pool": pool, **policy.to_dict(), "updated": record.get("updated"), "by": record.get("by"),
            "denied": list(DENIED_HOST_PATHS)}


# ---- paths ---------------------------------------------------------------------------------------------

def normal_path(value: Any, field: str) -> str:
    """An absolute path with ``//``, ``.`` and a trailing ``/`` gone; ``..`` is refused, not resolved."""
    if not isinstance(value, str) or not value.startswith("/") or "\x00" in value or len(value) > MAX_TEXT:
        raise InvalidInput(f"expected an absolute path, got {value!r}", field=field)
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"{value!r} must not contain '..'", field=field)
    return "/" + "/".join(parts)


def at_or_below(path: str, base: str) -> bool:
    """Whether normalised ``path`` is ``base`` or inside it, by whole components (``/a/bc`` is not in ``/a/b``)."""
    return base == "/" or path == base or path.startswith(base + "/")


def denied(path: str) -> str | None:
    """Why no policy may let a job bind the normalised host ``path``, or None."""
    if path == "/":
        return "host path / is the whole host, which no policy allows (built-in deny list)"
    for never in DENIED_HOST_PATHS:
        if path == never:
            return f"host path {path} is never allowed, whatever the policy (built-in deny list)"
        if at_or_below(path, never):
            return f"host path {path} is below {never}, which no policy allows (built-in deny list)"
        if at_or_below(never, path):
            return f"host path {path} holds {never}, which no policy allows (built-in deny list)"
    return None


# ---- checks --------------------------------------------------------------------------------------------

def runs_as_root(user: str, uid: int | None = None, gid: int | None = None) -> bool:
    """``root``, uid 0 written as a number, or a resolved uid or primary gid of 0."""
    return user == "root" or (user.isdigit() and int(user) == 0) or uid == 0 or gid == 0


def check_policy(pool: str, policy: PoolPolicy, spec: JobSpec, owner: str) -> None:
    """``PermissionDenied`` naming the first field of ``spec`` that ``policy`` does not allow."""
    if runs_as_root(spec.user):
        _check_root(pool, policy, owner, "user", f"user {spec.user!r} is root")
    for i, mount in enumerate(spec.resources.mounts):
        _check_mount(pool, policy, mount.host, not mount.readonly, f"resources.mounts[{i}].host")
    packages = [("program.package", spec.program.package)]
    if spec.program.data is not None:
        packages.append(("program.data.package", spec.program.data.package))
    for field, url in packages:
        if url is not None:
            problem = package_problem(policy, url)
            if problem is not None:
                never = _file_denied(url)
                if never is not None:
                    raise PermissionDenied(f"pool {pool!r}: package {url}: {never}", field=field,
                                           details={"pool": pool, "rule": "denied", "allowed": []})
                raise _refused(pool, field, problem, "package_sources", policy.package_sources)
    for i, name in enumerate(spec.capabilities):
        _check_capability(pool, policy, name, f"capabilities[{i}]")


def check_container(pool: str, policy: PoolPolicy, *, owner: str, user: str, uid: int, gid: int,
                    mounts: Sequence[tuple[str, bool]], capabilities: Iterable[str],
                    resolve: Callable[[str], str] | None = None) -> None:
    """The Agent's check of one container: its user, its mounts ``(host, writable)`` and capabilities.

    ``resolve`` (``os.path.realpath``) gives where a host path really leads on this host: the path
    after its symlinks must be allowed as well as the path written, so a link cannot lead a mount out.
    """
    if runs_as_root(user, uid, gid):
        _check_root(pool, policy, owner, "user", f"user {user!r} resolves to uid {uid}, gid {gid}")
    for i, (host, writable) in enumerate(mounts):
        field = f"mounts[{i}].host"
        path = normal_path(host, field)
        _check_mount(pool, policy, path, writable, field)
        if resolve is not None:
            real = resolve(path)
            if real != path:
                _check_mount(pool, policy, real, writable, field, via=path)
    for i, name in enumerate(sorted(set(capabilities))):
        _check_capability(pool, policy, name, f"capabilities[{i}]")


def package_problem(policy: PoolPolicy, url: str) -> str | None:
    """Why ``url`` may not be fetched under ``policy``, as the end of ``pool 'a' policy …``; None if it may."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"refuses package {url}: not a valid URL"
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return f"refuses package {url}: a file:// package is a local path, not a host"
        try:
            path = normal_path(unquote(parts.path), "package")
        except InvalidInput:
            return f"refuses package {url}: it must name an absolute path without '..'"
        if denied(path) is not None:
            return f"refuses package {url}: it is a host path no policy allows"
        if any(path != d and at_or_below(path, d) for d in policy.file_dirs()):
            return None
        return f"allows no package from {url}"
    if scheme in DEFAULT_PORTS:
        segments = unquote(parts.path).split("/")
        if "." in segments or ".." in segments:
            return f"refuses package {url}: '.' and '..' path segments are not allowed"
        host = (parts.hostname or "").lower()
        port = port or DEFAULT_PORTS[scheme]
        for source in policy.package_sources:
            origin = urlsplit(source)
            if (origin.scheme == scheme and origin.hostname == host
                    and (origin.port or DEFAULT_PORTS[scheme]) == port
                    and _under_prefix(parts.path or "/", origin.path)):
                return None
        return f"allows no package from {url}"
    return f"refuses package {url}: only file://, http:// and https:// packages are fetched"


def _file_denied(url: str) -> str | None:
    """Why a ``file://`` package names a host path no policy allows, or None."""
    try:
        parts = urlsplit(url)
        return denied(normal_path(unquote(parts.path), "package")) if parts.scheme.lower() == "file" else None
    except (ValueError, InvalidInput):
        return None


def _under_prefix(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _check_root(pool: str, policy: PoolPolicy, owner: str, field: str, what: str) -> None:
    if not policy.allows_root(owner):
        raise _refused(pool, field, f"does not let {owner!r} run jobs as root: {what}", "root_users",
                       policy.root_users)


def _check_mount(pool: str, policy: PoolPolicy, path: str, writable: bool, field: str, via: str = "") -> None:
    shown = f"{via} (which leads to {path})" if via else path
    never = denied(path)
    if never is not None:
        raise PermissionDenied(f"pool {pool!r}: {never}" + (f" (via {via})" if via else ""), field=field,
                               details={"pool": pool, "rule": "denied", "allowed": []})
    if policy.host_path_rule(path, writable=writable) is not None:
        return
    if writable and policy.host_path_rule(path, writable=False) is not None:
        raise _refused(pool, field, f"allows host path {shown} read-only only: mount it with readonly: true",
                       "host_paths", _rules_shown(policy))
    raise _refused(pool, field, f"allows no host path {shown}", "host_paths", _rules_shown(policy))


def _check_capability(pool: str, policy: PoolPolicy, name: str, field: str) -> None:
    if name not in policy.capabilities:
        raise _refused(pool, field, f"allows no capability {name}", "capabilities", policy.capabilities)


def _rules_shown(policy: PoolPolicy) -> tuple[str, ...]:
    return tuple(f"{r.path}:{'rw' if r.writable else 'ro'}" for r in policy.host_paths)


def _refused(pool: str, field: str, what: str, rule: str, allowed: Sequence[str]) -> PermissionDenied:
    """``pool 'a' policy allows no host path /etc (rule host_paths: none allowed)``, naming ``field``."""
    listed = ", ".join(allowed) if allowed else "none allowed"
    return PermissionDenied(f"pool {pool!r} policy {what} (rule {rule}: {listed})", field=field,
                            details={"pool": pool, "rule": rule, "allowed": list(allowed)})


# ---- reading a policy ------------------------------------------------------------------------------------

def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _items(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidInput(f"expected a list, got {value!r}", field=field)
    if len(value) > MAX_ENTRIES:
        raise InvalidInput(f"at most {MAX_ENTRIES} entries, got {len(value)}", field=field)
    return list(value)


def _root_users(value: Any, field: str) -> tuple[str, ...]:
    out = set()
    for i, name in enumerate(_items(value, field)):
        out.add(name if name == ROOT_ADMIN else check_user_name(name, f"{field}[{i}]"))
    return tuple(sorted(out))


def _host_paths(value: Any, field: str) -> tuple[HostPathRule, ...]:
    rules: dict[str, bool] = {}
    for i, item in enumerate(_items(value, field)):
        where = f"{field}[{i}]"
        if not isinstance(item, dict) or "path" not in item or set(item) - {"path", "writable"}:
            raise InvalidInput(f"expected {{path, writable}}, got {item!r}", field=where)
        path = normal_path(item["path"], f"{where}.path")
        for never in DENIED_HOST_PATHS:
            if path == "/" or at_or_below(path, never):
                raise InvalidInput(f"{path} is never bound into a container (built-in deny list: /, "
                                   f"{', '.join(DENIED_HOST_PATHS)})", field=f"{where}.path")
        writable = item.get("writable", False)
        if not isinstance(writable, bool):
            raise InvalidInput(f"expected true or false, got {writable!r}", field=f"{where}.writable")
        rules[path] = rules.get(path, False) or writable
    return tuple(HostPathRule(path, writable) for path, writable in sorted(rules.items()))


def _sources(value: Any, field: str) -> tuple[str, ...]:
    out = set()
    for i, item in enumerate(_items(value, field)):
        out.add(normal_source(item, f"{field}[{i}]"))
    return tuple(sorted(out))


def normal_source(value: Any, field: str) -> str:
    """``file:///dir`` (a directory that holds no denied path) or ``http(s)://host[:port][/prefix]``,
    normalised: host lower case, default port and trailing ``/`` dropped."""
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or any(
            ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(f"expected file:///dir or http(s)://host[:port][/prefix], got {value!r}", field=field)
    try:
        parts: SplitResult = urlsplit(value)
        port = parts.port
    except ValueError as err:
        raise InvalidInput(f"{value!r} is not a valid URL: {err}", field=field) from None
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise InvalidInput(f"{value!r}: a package source has no ?query or #fragment", field=field)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"{value!r}: a file:// source is a local directory (file:///srv/packages)",
                               field=field)
        if "%" in parts.path:
            raise InvalidInput(f"{value!r}: write the directory as it is, without %-escapes", field=field)
        path = normal_path(parts.path, field)
        never = denied(path)
        if never is not None:
            raise InvalidInput(f"{value!r}: {never.replace('host path', 'directory', 1)}; the directory is "
                               "bound into every container of the pool", field=field)
        return f"file://{path}"
    if scheme in DEFAULT_PORTS:
        if not parts.hostname or "@" in parts.netloc:
            raise InvalidInput(f"{value!r}: expected {scheme}://host[:port][/prefix], with no user name",
                               field=field)
        segments = unquote(parts.path).split("/")
        if "." in segments or ".." in segments:
            raise InvalidInput(f"{value!r} must not contain '.' or '..' path segments", field=field)
        host = parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"
        shown_port = f":{port}" if port is not None and port != DEFAULT_PORTS[scheme] else ""
        return f"{scheme}://{host}{shown_port}{parts.path.rstrip('/')}"
    raise InvalidInput(f"{value!r}: expected file:///dir, http://host or https://host", field=field)


def _capabilities(value: Any, field: str) -> tuple[str, ...]:
    return tuple(sorted({normalise_capability(name, f"{field}[{i}]") for i, name in enumerate(_items(value, field))}))


__all__ = ["DENIED_HOST_PATHS", "POLICIES", "RULES", "HostPathRule", "PoolPolicy", "at_or_below", "check_container",
           "check_policy", "denied", "normal_path", "normal_source", "package_problem", "policy_record", "policy_reply",
           "runs_as_root"]
