"""Namespace-safe, batched access to the legacy iptables ``filter`` table through python-iptables.

Why not ``iptc.Table("filter")``: python-iptables keeps one Table object per name for the whole
process, and a libiptc handle is bound to the network namespace of the thread that opened it (its
raw socket is made in ``iptc_init``). A cached handle opened in one namespace would read and commit
into that namespace when used from another (a test host, the root namespace). So each
:class:`FilterBatch` opens its own, uncached handle in the *calling thread's* namespace, applies any
number of changes in memory and commits them at once (libiptc replaces the whole table atomically),
then frees the handle. python-iptables also consults its cached tables to tell whether a target
names a chain; the rules built here are bound to the batch's own handle instead, so Galaxy never
populates the process-wide cache at all.

python-iptables drives libiptc, i.e. the *legacy* x_tables: ``iptables-legacy-save`` shows these
rules, the nft-based ``iptables-save`` (Debian's default ``iptables``) does not.

libxtables keeps global state, so every use of python-iptables goes through one process-wide lock.
Across processes, a batch holds ``/run/xtables.lock`` (flock) like the iptables-legacy tools do, so
a commit of ours never overwrites a rule another tool added between our read and our write.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from galaxy.ports._errors import PortError

_LOCK = threading.RLock()

try:
    import iptc as _iptc_module

    _IMPORT_PROBLEM: str | None = None
except Exception as exc:  # noqa: BLE001 - libiptc/libxtables missing or unloadable: report, don't crash
    _iptc_module = None
    _IMPORT_PROBLEM = f"python-iptables cannot be loaded: {type(exc).__name__}: {exc}"

FILTER = "filter"
INPUT = "INPUT"
OUTPUT = "OUTPUT"
XTABLES_LOCK = "/run/xtables.lock"
XTABLES_LOCK_WAIT_S = 10.0

# Library errors become PortError, whatever their type (IPTCError, XTablesError, ValueError from a
# rule buffer, OSError from ctypes).
_LIB_ERRORS: tuple[type[BaseException], ...] = (Exception,)


@dataclass(frozen=True)
class RuleView:
    """One decoded rule of a chain: only the fields Galaxy's own rules use."""

    protocol: str       # "tcp", "udp" or "" (any)
    dport: str          # "20001", "20000:29999" or "" (none)
    comment: str        # the ``-m comment`` text or ""
    target: str         # "ACCEPT", "REJECT", "RETURN", a chain name …
    reject_with: str    # REJECT's ``--reject-with`` or ""


def _require() -> Any:
    if _iptc_module is None:
        raise PortError(_IMPORT_PROBLEM or "python-iptables is not available")
    return _iptc_module


class FilterBatch:
    """One libiptc handle on the filter table of the calling thread's network namespace.

    Use as a context manager: changes made inside are committed together on a clean exit and
    discarded if the block raises. Must be used on one thread (the handle lives in that thread's
    namespace). Holds the process-wide python-iptables lock while open.
    """

    def __init__(self) -> None:
        iptc = _require()
        _LOCK.acquire()
        self._lock_fd = -1
        try:
            self._lock_fd = _xtables_lock()
            table = object.__new__(iptc.Table)  # bypass iptc.Table's per-name, per-process cache
            table._init(FILTER, False)
        except PortError:
            self._unlock()
            raise
        except _LIB_ERRORS as exc:
            self._unlock()
            raise PortError(f"cannot open the legacy iptables filter table: {exc} "
                            "(needs root/CAP_NET_ADMIN and the ip_tables/iptable_filter kernel support)"
                            ) from exc
        self._iptc = iptc
        self._table = table
        self._rule_cls = type("_GalaxyRule", (iptc.Rule,), {"tables": property(lambda _self: [table])})
        self._decode_cls = type("_GalaxyDecodedRule", (iptc.Rule,), {"tables": property(lambda _self: [])})
        self.changed = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FilterBatch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None and self.changed:
                self.commit()
        finally:
            self.close()

    def commit(self) -> None:
        """Write every change made so far to the kernel in one atomic table replacement."""
        try:
            self._table.commit()
        except _LIB_ERRORS as exc:
            raise PortError(f"iptables commit failed: {exc}") from exc
        self.changed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._table._handle:
                self._table._iptc.iptc_free(self._table._handle)
                self._table._handle = None
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1
        _LOCK.release()

    # -- chains ----------------------------------------------------------------------------------

    def is_chain(self, chain: str) -> bool:
        return bool(self._table.is_chain(chain))

    def create_chain(self, chain: str) -> None:
        self._call("create chain " + chain, self._table.create_chain, chain)

    def delete_chain(self, chain: str) -> None:
        self._call("delete chain " + chain, self._table.delete_chain, chain)

    def flush(self, chain: str) -> None:
        self._call("flush chain " + chain, self._table.flush_entries, chain)

    def targets(self, chain: str) -> list[str]:
        """The target of every rule of ``chain`` in order, read without decoding (fast)."""
        found: list[str] = []
        entry = self._table.first_rule(chain)
        while entry:
            found.append(_target_name(self._table.get_target(entry)))
            entry = self._table.next_rule(entry)
        return found

    def rules(self, chain: str, targets: frozenset[str] | None = None) -> list[RuleView]:
        """The rules of ``chain`` decoded, only those jumping to ``targets`` if given.

        Slow (libxtables prints each match as text): used to adopt a chain, not per assignment.
        """
        holder = _ChainRef(self._table, chain)
        views: list[RuleView] = []
        try:
            entry = self._table.first_rule(chain)
            while entry:
                if targets is None or _target_name(self._table.get_target(entry)) in targets:
                    views.append(self._decode(self._decode_cls(entry, holder)))
                entry = self._table.next_rule(entry)
        except _LIB_ERRORS as exc:
            raise PortError(f"cannot read chain {chain}: {exc}") from exc
        return views

    # -- rules -----------------------------------------------------------------------------------

    def port_rule(self, protocol: str, dport: str, target: str, *, comment: str = "",
                  reject_with: str = "") -> Any:
        """A ``-p <protocol> --dport <dport> [-m comment] -j <target>`` rule, not yet placed."""
        try:
            rule = self._rule_cls()
            rule.protocol = protocol
            match = rule.create_match(protocol)
            match.dport = dport
            if comment:
                rule.create_match("comment").comment = comment
            made = rule.create_target(target)
            if reject_with:
                made.reject_with = reject_with
            return rule
        except _LIB_ERRORS as exc:
            raise PortError(f"cannot build rule -p {protocol} --dport {dport} -j {target}: {exc}") from exc

    def jump_rule(self, chain: str) -> Any:
        """A bare ``-j <chain>`` rule (the chain must exist in this batch)."""
        try:
            rule = self._rule_cls()
            rule.create_target(chain)
            return rule
        except _LIB_ERRORS as exc:
            raise PortError(f"cannot build a jump to {chain}: {exc}") from exc

    def cgroup_jump_rule(self, path: str, chain: str, comment: str) -> Any:
        """``-m cgroup --path <path> -m comment --comment <comment> -j <chain>`` (the cgroup must exist)."""
        return self._built(f"a jump for cgroup {path}", chain, cgroup={"path": path}, comment={"comment": comment})

    def sport_rule(self, protocol: str, sport: int, target: str) -> Any:
        """``-p <protocol> --sport <sport> -j <target>``."""
        return self._built(f"rule -p {protocol} --sport {sport}", target, protocol=protocol,
                           **{protocol: {"sport": str(sport)}})

    def reply_jump_rule(self, chain: str, comment: str) -> Any:
        """``-m conntrack --ctdir REPLY -m comment --comment <comment> -j <chain>``: packets answering
        a flow begun elsewhere (a packet conntrack does not track matches neither direction)."""
        return self._built(f"a jump of replies to {chain}", chain, conntrack={"ctdir": "REPLY"},
                           comment={"comment": comment})

    def drop_rule(self) -> Any:
        """A bare ``-j DROP``."""
        return self._built("a drop rule", "DROP")

    def _built(self, what: str, target: str, protocol: str = "", **matches: dict[str, str]) -> Any:
        """A rule with ``matches`` (match name → its parameters, in order) jumping to ``target``."""
        try:
            rule = self._rule_cls()
            if protocol:
                rule.protocol = protocol
            for name, params in matches.items():
                match = rule.create_match(name)
                for key, value in params.items():
                    setattr(match, key, value)
            rule.create_target(target)
            return rule
        except _LIB_ERRORS as exc:
            raise PortError(f"cannot build {what}: {exc}") from exc

    def delete_at(self, chain: str, index: int) -> None:
        """Delete the rule at ``index`` (0-based) of ``chain``."""
        handle = self._table._handle
        ret = self._table._iptc.iptc_delete_num_entry(chain.encode(), index, handle)
        if ret != 1:
            raise PortError(f"iptables: cannot delete rule {index} of {chain}")
        self.changed = True

    def rule_from(self, view: RuleView) -> Any:
        """Rebuild a rule Galaxy made from its decoded view (to delete it by content)."""
        if view.protocol and view.dport:
            return self.port_rule(view.protocol, view.dport, view.target, comment=view.comment,
                                  reject_with=view.reject_with)
        if not view.protocol and not view.dport and not view.comment:
            return self.jump_rule(view.target)
        raise PortError(f"not a rule Galaxy makes: {view}")

    def append(self, chain: str, rule: Any) -> None:
        self._call(f"append to {chain}", self._table.append_entry, chain, _buffer(rule))

    def insert(self, chain: str, rule: Any, position: int = 0) -> None:
        self._call(f"insert into {chain}", self._table.insert_entry, chain, _buffer(rule), position)

    def delete(self, chain: str, rule: Any) -> bool:
        """Delete the first rule equal to ``rule``; False when there is none."""
        try:
            self._table.delete_entry(chain, _buffer(rule), rule.mask)
        except self._iptc.IPTCError:
            return False
        except _LIB_ERRORS as exc:
            raise PortError(f"cannot delete a rule from {chain}: {exc}") from exc
        self.changed = True
        return True

    # -- helpers ---------------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except _LIB_ERRORS as exc:
            raise PortError(f"iptables: cannot {what}: {exc}") from exc
        self.changed = True

    @staticmethod
    def _decode(rule: Any) -> RuleView:
        dport = comment = ""
        for match in rule.matches:
            params = match.get_all_parameters()
            if match.name in ("tcp", "udp"):
                dport = ",".join(params.get("dport", []))
            elif match.name == "comment":
                comment = " ".join(params.get("comment", []))
        target = rule.target
        name = target.name if target is not None else ""
        reject_with = ""
        if name == "REJECT":
            reject_with = " ".join(target.get_all_parameters().get("reject-with", []))
        return RuleView(protocol=rule.protocol or "", dport=dport, comment=comment, target=name,
                        reject_with=reject_with)


def _xtables_lock() -> int:
    """Hold the lock the iptables tools take around read-modify-commit; returns its descriptor."""
    try:
        fd = os.open(XTABLES_LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise PortError(f"cannot open {XTABLES_LOCK}: {exc}") from exc
    deadline = time.monotonic() + XTABLES_LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise PortError(f"{XTABLES_LOCK} is held by another iptables user for over "
                                f"{XTABLES_LOCK_WAIT_S:.0f} s") from None
            time.sleep(0.01)


class _ChainRef:
    """What python-iptables' rule decoder needs of a chain: its name and table."""

    def __init__(self, table: Any, name: str) -> None:
        self.table = table
        self.name = name


def _target_name(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")


def _buffer(rule: Any) -> Any:
    # No rule.final_check(): it re-parses every match (~70 % of the cost of a write) and only
    # re-validates what port_rule/jump_rule built from fixed, known-good options.
    buf = rule.rule
    if not buf:
        raise PortError("python-iptables produced an empty rule buffer")
    return buf


def check_iptables() -> None:
    """Raise :class:`PortError` saying why Galaxy cannot police ports here, or return quietly.

    Opens the legacy filter table in the calling thread's namespace and builds (without placing)
    each kind of rule Galaxy writes, so a missing ``tcp``/``udp``/``comment``/``REJECT`` extension
    or missing kernel support is found at start instead of at the first assignment.
    """
    with FilterBatch() as batch:
        batch.port_rule("tcp", "1", "ACCEPT", comment="galaxy:probe")
        batch.port_rule("udp", "1", "RETURN", comment="galaxy:probe")
        batch.port_rule("tcp", "1:2", "REJECT", reject_with="tcp-reset")
        batch.port_rule("udp", "1:2", "REJECT", reject_with="icmp-port-unreachable")


def iptables_available() -> bool:
    """True when :func:`check_iptables` passes in the calling thread's network namespace."""
    try:
        check_iptables()
    except PortError:
        return False
    return True


__all__ = ["FilterBatch", "RuleView", "check_iptables", "iptables_available", "FILTER", "INPUT"]
