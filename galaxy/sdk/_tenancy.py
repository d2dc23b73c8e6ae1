"""Users, grants, quotas, usage, pools and pool policies as ``Client`` calls (the AppMaster's ``TenancyApi``).

Arguments are checked here, before anything is sent, with the same rules the AppMaster applies
(``galaxy.tenancy.model``), so a typo fails at once with the argument named, and quota figures may be
written the way a job file writes them (``16Gi``, ``500m``). The server checks again: it is the
authority, this is for the user's sake.

Reads (``whoami``, ``users``, ``quota``, ``usage``, …) are retried across leader changes; writes
follow the SDK's one rule (``OutcomeUnknown`` if the leader went away after the write left).
A refused quota arrives as ``QuotaExceeded`` whose ``details`` hold ``quota, asked, used, limit, unit``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from galaxy.errors import InvalidInput
from galaxy.mesh.keys import check_key
from galaxy.protocol.tenancy import TenancyApi as Tenancy
from galaxy.spec import SpecError
from galaxy.spec._units import parse_bytes, parse_duration
from galaxy.tenancy.model import (
    HOST_ADMIN,
    JOB_CREATE,
    JOB_DELETE,
    JOB_READ,
    JOB_UPDATE,
    check_permission,
    check_pool_name,
    check_user_name,
)
from galaxy.tenancy.policy import PoolPolicy

ALL = "all"
JOB_PERMISSIONS = (JOB_CREATE, JOB_UPDATE, JOB_DELETE, JOB_READ)   # what ``all`` stands for: not host.admin
COUNT_LIMITS = ("jobs", "replicas")
MAX_CORES = 10**7                                                   # far beyond any cluster; keeps figures exact
CLEARABLE = ("cpu", "memory", "jobs", "replicas")                   # and ``disk.<medium>``
_CPU = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<milli>m?)")
_MEDIUM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class TenancyCalls:
    """Mixed into ``Client``: needs only its ``_read`` and ``_write``."""

    if TYPE_CHECKING:
        def _read(self, role: str, method: str, body: Any = None, *, timeout: float | None = None) -> Any: ...

        def _write(self, role: str, method: str, body: Any = None, *, timeout: float | None = None) -> Any: ...

    # ---- who -------------------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """Who the cluster takes this client's key for: ``{user, kind, admin, grants: {pool: [perm]}}``."""
        return dict(self._read("appmaster", Tenancy.WHOAMI, {}))

    # ---- users (administrators) ------------------------------------------------------------------

    def user_create(self, name: str, public_key: str, admin: bool = False) -> dict[str, Any]:
        """Make user ``name`` bound to ``public_key`` (only the public half ever leaves the caller)."""
        body = {"user": check_user_name(name), "key": check_key(public_key, "key"), "admin": bool(admin)}
        return dict(self._write("appmaster", Tenancy.USER_CREATE, body))

    def user_remove(self, name: str) -> dict[str, Any]:
        """Remove user ``name``: their key is refused from the moment this returns."""
        return dict(self._write("appmaster", Tenancy.USER_REMOVE, {"user": check_user_name(name)}))

    def users(self) -> list[dict[str, Any]]:
        """Every user record: name, key, admin, grants, quota, created."""
        return list(self._read("appmaster", Tenancy.USER_LIST, {}))

    def user(self, name: str | None = None) -> dict[str, Any]:
        """One user's record plus ``used`` (their demand); without ``name``, the caller's own."""
        return dict(self._read("appmaster", Tenancy.USER_SHOW, _maybe_user(name)))

    def grant(self, user: str, pool: str, permissions: str | Iterable[str]) -> dict[str, Any]:
        """Give ``user`` ``permissions`` on ``pool`` (``all`` = every job permission); the updated record."""
        body = {"user": check_user_name(user), "pool": check_pool_name(pool),
                "permissions": expand_permissions(permissions)}
        return dict(self._write("appmaster", Tenancy.USER_GRANT, body))

    def revoke(self, user: str, pool: str, permissions: str | Iterable[str] | None = None) -> dict[str, Any]:
        """Take ``permissions`` on ``pool`` from ``user``; without ``permissions``, every grant on ``pool``."""
        body: dict[str, Any] = {"user": check_user_name(user), "pool": check_pool_name(pool)}
        if permissions is not None:
            body["permissions"] = expand_permissions(permissions)
        return dict(self._write("appmaster", Tenancy.USER_REVOKE, body))

    # ---- quota -----------------------------------------------------------------------------------

    def quota_set(self, user: str, *, cpu: float | str | None = None, memory: int | str | None = None,
                  disk: Mapping[str, int | str] | None = None, jobs: int | None = None,
                  replicas: int | None = None, clear: Iterable[str] = ()) -> dict[str, Any]:
        """Set some of ``user``'s limits and lift those named in ``clear``; the others stay as they are.

        ``cpu`` in cores (``8``, ``"500m"``), ``memory`` and ``disk`` sizes in bytes or with units
        (``"16Gi"``), ``disk`` per medium; ``clear`` names ``cpu``, ``memory``, ``jobs``, ``replicas`` or
        ``disk.<medium>``. Returns ``{user, limit, used}``.
        """
        body = {"user": check_user_name(user), **quota_change(cpu=cpu, memory=memory, disk=disk, jobs=jobs,
                                                               replicas=replicas, clear=clear)}
        return dict(self._write("appmaster", Tenancy.QUOTA_SET, body))

    def quota(self, user: str | None = None) -> dict[str, Any]:
        """``{user, limit, used}`` of ``user`` (default the caller): limits beside what their jobs hold."""
        return dict(self._read("appmaster", Tenancy.QUOTA_SHOW, _maybe_user(user)))

    def usage(self, user: str | None = None, since: float | int | str | datetime | None = None,
              pool: str | None = None) -> dict[str, Any]:
        """What ``user`` (default the caller) used and reserved since ``since``, per pool and in total.

        ``since``: epoch seconds, a datetime, or text as the CLI takes it (``24h`` ago, ``2026-11-01``
        UTC, or epoch digits); by default the server's (the last day). Figures are core-, GiB-seconds.
        """
        body = _maybe_user(user)
        if since is not None:
            body["since"] = parse_since(since)
        if pool is not None:
            body["pool"] = check_pool_name(pool)
        return dict(self._read("appmaster", Tenancy.USAGE, body))

    # ---- pools -----------------------------------------------------------------------------------

    def pool_create(self, name: str, description: str = "") -> dict[str, Any]:
        """Declare pool ``name`` (administrators): jobs may then be submitted to it."""
        if not isinstance(description, str):
            raise InvalidInput(f"expected text, got {description!r}", field="description")
        body = {"pool": check_pool_name(name), "description": description}
        return dict(self._write("appmaster", Tenancy.POOL_CREATE, body))

    def pools(self) -> list[dict[str, Any]]:
        """Every pool: ``{pool, description, hosts, jobs, declared}``."""
        return list(self._read("appmaster", Tenancy.POOL_LIST, {}))

    def pool_delete(self, name: str) -> dict[str, Any]:
        """Delete an empty pool; Conflict (with the counts) while hosts or jobs are in it."""
        return dict(self._write("appmaster", Tenancy.POOL_DELETE, {"pool": check_pool_name(name)}))

    def pool_policy(self, pool: str) -> dict[str, Any]:
        """``pool``'s policy (anyone with a grant on it): ``{pool, root_users, host_paths: [{path,
        writable}], package_sources, capabilities, updated, by, denied}`` — ``denied`` is the built-in
        list of host paths no policy allows."""
        return dict(self._read("appmaster", Tenancy.POOL_POLICY_SHOW, {"pool": check_pool_name(pool)}))

    def set_pool_policy(self, pool: str, *, root_users: Iterable[str] = (),
                        host_paths: Iterable[str | Mapping[str, Any] | tuple[str, bool]] = (),
                        package_sources: Iterable[str] = (), capabilities: Iterable[str] = ()) -> dict[str, Any]:
        """Replace ``pool``'s policy (administrators); a rule not given allows nothing.

        ``host_paths`` entries are ``"/srv/data:ro"`` / ``"/var/log/app:rw"`` (read-only without a
        suffix), ``{"path", "writable"}`` or ``(path, writable)``; ``package_sources`` are
        ``file:///dir`` or ``http(s)://host[:port][/prefix]``; ``capabilities`` are names such as
        ``NET_BIND_SERVICE``. Everything is checked before it is sent (``InvalidInput`` naming the rule
        and entry, e.g. ``host_paths[1].path``). Returns the policy as ``pool_policy`` does.
        """
        body = {"pool": check_pool_name(pool),
                "policy": policy_body(root_users=root_users, host_paths=host_paths,
                                      package_sources=package_sources, capabilities=capabilities)}
        return dict(self._write("appmaster", Tenancy.POOL_POLICY_SET, body))


# ---- argument rules (the CLI uses them too) -------------------------------------------------------

def expand_permissions(permissions: str | Iterable[str]) -> list[str]:
    """Permission names, ``all`` expanded to the job permissions; ``host.admin`` only when named."""
    given = [permissions] if isinstance(permissions, str) else list(permissions)
    if not given:
        raise InvalidInput(f"give one or more of {ALL}, {', '.join(JOB_PERMISSIONS)}, {HOST_ADMIN}",
                           field="permissions")
    out: list[str] = []
    for name in given:
        for perm in JOB_PERMISSIONS if name == ALL else (check_permission(name, "permissions"),):
            if perm not in out:
                out.append(perm)
    return out


def quota_change(*, cpu: float | str | None = None, memory: int | str | None = None,
                 disk: Mapping[str, int | str] | None = None, jobs: int | None = None, replicas: int | None = None,
                 clear: Iterable[str] = ()) -> dict[str, Any]:
    """The ``quota`` and ``clear`` of a ``quota.set`` body, every figure in cores, bytes or a count."""
    quota: dict[str, Any] = {}
    if cpu is not None:
        quota["cpu"] = parse_cores(cpu, "cpu")
    if memory is not None:
        quota["memory"] = _bytes(memory, "memory")
    if disk is not None:
        if not isinstance(disk, Mapping):
            raise InvalidInput(f"expected a map of medium to size, got {disk!r}", field="disk")
        quota["disk"] = {_medium(medium): _bytes(size, f"disk.{medium}") for medium, size in disk.items()}
    for name, value in (("jobs", jobs), ("replicas", replicas)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"expected a whole number >= 0, got {value!r}", field=name)
            quota[name] = value
    cleared = [clear] if isinstance(clear, str) else list(clear)
    for name in cleared:
        if name not in CLEARABLE and not (isinstance(name, str) and name.startswith("disk.")
                                          and _MEDIUM.match(name[5:])):
            raise InvalidInput(f"cannot clear {name!r}: name {', '.join(CLEARABLE)} or disk.<medium>", field="clear")
        if name in quota or (name.startswith("disk.") and name[5:] in quota.get("disk", {})):
            raise InvalidInput(f"{name} is both set and cleared", field="clear")
    if not quota and not cleared:
        raise InvalidInput("give a limit to set (cpu, memory, disk, jobs, replicas) or one to clear",
                           field="quota")
    return {"quota": quota, "clear": cleared}


def parse_cores(value: object, field: str) -> float:
    """Cores as a quota states them: ``8``, ``2.5``, ``"500m"``; zero allowed, no upper bound."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"expected cores such as 8, 2.5 or 500m, got {value!r}", field=field)
    try:
        if isinstance(value, str):
            match = _CPU.fullmatch(value.strip())
            if match is None:
                raise InvalidInput(f"expected cores such as 8, 2.5 or 500m, got {value!r}", field=field)
            cores = Decimal(match["num"]) / (1000 if match["milli"] else 1)
        else:
            cores = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"expected cores such as 8, 2.5 or 500m, got {value!r}", field=field) from None
    if not cores.is_finite() or cores < 0 or cores > MAX_CORES:
        raise InvalidInput(f"expected cores from 0 to {MAX_CORES}, got {value!r}", field=field)
    return float(cores.quantize(Decimal("0.001")))


def parse_since(value: object, now: float | None = None) -> float:
    """Epoch seconds from ``since``: a number or digits (epoch), a duration ago (``24h``, ``7d``), a
    date or date-time (``2026-11-01``, ``2026-11-01T06:00``; UTC unless it names a zone), a datetime."""
    moment = time.time() if now is None else now
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise InvalidInput(f"expected a time after the epoch, got {value!r}", field="since")
        return float(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return float(text)
        if "-" in text[1:]:
            try:
                return parse_since(datetime.fromisoformat(text), moment)
            except ValueError:
                pass
        else:
            try:
                return moment - parse_duration(text, field="since")
            except SpecError:
                pass
    raise InvalidInput(f"expected a duration ago (24h, 7d), a date (2026-11-01, UTC) or epoch seconds, "
                       f"got {value!r}", field="since")


def _bytes(value: object, field: str) -> int:
    try:
        return parse_bytes(value, field=field)
    except SpecError as err:
        raise InvalidInput(err.errors[0].message, field=field) from None


def _medium(value: object) -> str:
    if not isinstance(value, str) or not _MEDIUM.match(value):
        raise InvalidInput(f"expected a disk medium name such as ssd or hdd, got {value!r}", field="disk")
    return value


def policy_body(*, root_users: Iterable[str] = (), host_paths: Iterable[str | Mapping[str, Any] | tuple[str, bool]] = (),
                package_sources: Iterable[str] = (), capabilities: Iterable[str] = ()) -> dict[str, Any]:
    """The ``policy`` of a ``pool.policy.set`` body, checked and normalised as the AppMaster will."""
    rules = {"root_users": _listed(root_users, "root_users"),
             "host_paths": [host_path_rule(item, f"host_paths[{i}]")
                            for i, item in enumerate(_listed(host_paths, "host_paths"))],
             "package_sources": _listed(package_sources, "package_sources"),
             "capabilities": _listed(capabilities, "capabilities")}
    return PoolPolicy.from_dict(rules).to_dict()


def host_path_rule(item: Any, field: str) -> dict[str, Any]:
    """``"/srv/data:ro"``, ``"/srv/data:rw"``, ``"/srv/data"`` (read-only), ``(path, writable)`` or a mapping."""
    if isinstance(item, Mapping):
        return dict(item)
    if isinstance(item, tuple) and len(item) == 2:
        return {"path": item[0], "writable": item[1]}
    if not isinstance(item, str) or not item:
        raise InvalidInput(f"expected PATH[:ro|:rw], got {item!r}", field=field)
    path, sep, mode = item.rpartition(":")
    if not sep:
        return {"path": item, "writable": False}
    if mode not in ("ro", "rw"):
        raise InvalidInput(f"expected PATH:ro or PATH:rw, got {item!r}", field=field)
    return {"path": path, "writable": mode == "rw"}


def _listed(value: Any, field: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping):
        raise InvalidInput(f"expected a list, got {value!r}", field=field)
    try:
        return list(value)
    except TypeError:
        raise InvalidInput(f"expected a list, got {value!r}", field=field) from None


def _maybe_user(name: str | None) -> dict[str, Any]:
    return {} if name is None else {"user": check_user_name(name)}


__all__: Sequence[str] = ["ALL", "JOB_PERMISSIONS", "TenancyCalls", "expand_permissions", "host_path_rule",
                          "parse_cores", "parse_since", "policy_body", "quota_change"]
