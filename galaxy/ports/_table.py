"""The Agent's port table: who holds which port of its range, kept in step with the kernel.

One :class:`PortTable` per Agent (per network namespace). It hands out ports all-or-nothing, never
gives one port to two owners, and — unless told otherwise — mirrors every open hold into the
Agent's iptables chain (:mod:`galaxy.ports._firewall`) and keeps the range out of the kernel's
ephemeral ports (:mod:`galaxy.ports._sysctl`). The chain doubles as the durable record: after a
restart, :meth:`PortTable.adopt` rebuilds the table from it, so memory and kernel cannot disagree.

A hold has two steps so a container's rules cost one table commit: :meth:`PortTable.hold` books the
ports in memory before the container exists, :meth:`PortTable.open` writes their admission rules and
the container's reply filter (``_replies``, which names its cgroup) once it does. A hold not yet
open is not in the chain; the Agent's own records undo it after a crash.

Every kernel step runs in the network namespace of the calling thread.

Fixed ports outside the range are allowed when a bind test says nobody uses them on this host:
they are recorded (a RETURN rule in the chain, so adoption finds them) but not policed and not
reserved — outside its range Galaxy only books the port, the host's own firewall policy applies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType

from galaxy.errors import InvalidInput, ResourceUnavailable
from galaxy.ports._firewall import NOTE_MAX, PortFirewall, chain_name, check_owner
from galaxy.ports._iptc import FilterBatch, check_iptables
from galaxy.ports._probe import port_is_free
from galaxy.ports._replies import ReplyFilter
from galaxy.ports._sysctl import (
    Span,
    ephemeral_range,
    format_spans,
    parse_spans,
    reserve_ephemeral,
    unreserve_ephemeral,
)

log = logging.getLogger(__name__)


class PortTable:
    """Ports ``lo..hi`` of one Agent, tagged ``owner_tag`` (its chain is ``GALAXY-<owner_tag>``).

    ``firewall=False`` keeps the table in memory only (no iptables); ``reserve=False`` leaves
    ``ip_local_reserved_ports`` alone. Both default to on, which needs root (CAP_NET_ADMIN).
    ``probe(port) -> bool`` says whether a port is free on the host (default: a bind test in the
    calling thread's namespace); it is consulted for every port before it is handed out.
    """

    def __init__(self, owner_tag: str, lo: int, hi: int, *, firewall: bool = True, reserve: bool = True,
                 probe: Callable[[int], bool] = port_is_free) -> None:
        if not (_is_port(lo) and _is_port(hi) and lo <= hi):
            raise InvalidInput(f"need 1 <= lo <= hi <= 65535, got {lo!r}..{hi!r}", field="range")
        self.owner_tag = owner_tag
        self.chain = chain_name(owner_tag)
        self.lo = lo
        self.hi = hi
        self.firewall = PortFirewall(owner_tag, lo, hi) if firewall else None
        self.replies = ReplyFilter(owner_tag) if firewall else None
        self.reserve = reserve
        self._probe = probe
        self.ephemeral_overlap: Span | None = None
        self._held: dict[int, str] = {}
        self._by_owner: dict[str, list[int]] = {}
        self._open: set[str] = set()  # owners whose rules are in the kernel
        self._cursor = lo
        self._kept_reserved: list[Span] | None = None
        self._ensured = False
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Check iptables, make the chain and reserve the range. Idempotent; call at Agent start."""
        with self._lock:
            self._check_ephemeral()
            note: str | None = None
            if self.firewall is not None:
                check_iptables()
                note = self.firewall.read_note()
            if self.reserve:
                before = reserve_ephemeral(self.lo, self.hi)
                if self._kept_reserved is None:
                    # A chain already there means a previous incarnation reserved the range: what
                    # was reserved before *it* ran is in the chain's note, not in `before`.
                    known = _parse_kept(note) if note is not None else None
                    self._kept_reserved = known if known is not None else before
            if self.firewall is not None:
                self.firewall.ensure_chain(self._note())
            if self.replies is not None:
                self.replies.ensure_chain()
            self._ensured = True

    def adopt(self) -> dict[int, str]:
        """Rebuild the holds from the chain after a restart, then :meth:`ensure`; returns them."""
        if self.firewall is None:
            raise InvalidInput("adopt() reads the iptables chain; this table has firewall=False "
                               "(use rebuild() with the Agent's records)", field="firewall")
        with self._lock:
            found = self.firewall.read()
            self._set(found)
            self.ensure()
            return dict(found)

    def rebuild(self, assignments: Mapping[str, Iterable[int]]) -> None:
        """Replace the holds with ``{owner: ports}`` (the Agent's own records) and make the chain match."""
        wanted: dict[int, str] = {}
        for owner, ports in assignments.items():
            check_owner(owner)
            for port in ports:
                if not _is_port(port):
                    raise InvalidInput(f"not a port: {port!r}", field=f"assignments.{owner}")
                other = wanted.setdefault(port, owner)
                if other != owner:
                    raise InvalidInput(f"port {port} given to both {other!r} and {owner!r}",
                                       field="assignments")
        with self._lock:
            if self.firewall is not None:
                self._ensure_once()
                self.firewall.reconcile(wanted, self._note())
            if self.replies is not None:  # a crash's leftovers; the kept owners' rules stay in force
                leftovers = self.replies.owners() - set(assignments)
                if leftovers:
                    with FilterBatch() as batch:
                        for owner in leftovers:
                            self.replies.release(batch, owner)
            self._set(wanted)

    def close(self, remove_rules: bool = True) -> None:
        """Forget the table; with ``remove_rules`` also remove the chain and our reservation.

        An Agent that restarts (containers keep running) closes with ``remove_rules=False`` so the
        rules stay in force and the next incarnation adopts them.
        """
        with self._lock:
            if remove_rules:
                if self.firewall is not None:
                    self.firewall.remove_chain()
                if self.replies is not None:
                    self.replies.remove_chain()
                if self.reserve:
                    unreserve_ephemeral(self.lo, self.hi, keep=self._kept_reserved or ())
            self._set({})
            self._ensured = False

    def __enter__(self) -> PortTable:
        self.ensure()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- holds -----------------------------------------------------------------------------------

    def assign(self, owner: str, dynamic: int = 0, fixed: Sequence[int] = ()) -> list[int]:
        """:meth:`hold` the ports and :meth:`open` them at once (no reply filter)."""
        with self._lock:
            chosen = self.hold(owner, dynamic, fixed)
            self.open(owner)
            return chosen

    def hold(self, owner: str, dynamic: int = 0, fixed: Sequence[int] = ()) -> list[int]:
        """Give ``owner`` the ``fixed`` ports plus ``dynamic`` free ones of the range, or nothing.

        Returns the fixed ports in the order asked, then the dynamic ones. The ports are the
        owner's from now on (nobody else gets them) but closed until :meth:`open`. Raises
        ResourceUnavailable naming the port and its holder when a fixed port is taken (by another
        owner, by this owner already, or by a process outside Galaxy), or when the range has too
        few free ports; nothing is held then.
        """
        check_owner(owner)
        if isinstance(dynamic, bool) or not isinstance(dynamic, int) or dynamic < 0:
            raise InvalidInput(f"dynamic must be a count >= 0, got {dynamic!r}", field="dynamic")
        fixed = list(fixed)
        for port in fixed:
            if not _is_port(port):
                raise InvalidInput(f"not a port: {port!r}", field="fixed")
        if len(set(fixed)) != len(fixed):
            raise InvalidInput(f"a fixed port is asked twice: {fixed}", field="fixed")
        with self._lock:
            self._ensure_once()
            for port in fixed:
                self._check_fixed(port)
            chosen = fixed + self._pick(dynamic, set(fixed))
            for port in chosen:
                self._held[port] = owner
            self._by_owner.setdefault(owner, []).extend(chosen)
            return chosen

    def open(self, owner: str, cgroup_path: str | None = None) -> None:
        """Admit traffic to ``owner``'s held ports and, given its v2 cgroup ``cgroup_path``
        (existing), let its sockets answer on those ports only — any other port, in the range or
        not, stays unreachable (see ``_replies``). One table commit for both, the one a create
        pays for (each commit rewrites the whole table: ~3 ms at 250 containers)."""
        with self._lock:
            if self.firewall is None:
                return
            ports = self._by_owner.get(owner, [])
            if not ports and cgroup_path is None:
                self._open.add(owner)
                return
            with FilterBatch() as batch:
                if owner not in self._open and ports:
                    self.firewall.change(batch, {port: owner for port in ports}, {}, exact=True)
                if cgroup_path is not None and self.replies is not None:
                    self.replies.confine(batch, owner, cgroup_path, ports)
            self._open.add(owner)

    def shut(self, owner: str) -> None:
        """Remove ``owner``'s rules (admission and replies) in one commit, keeping its holds: before
        its cgroup is removed (a rule naming a removed cgroup fails every commit of the table),
        while its processes may still hold the ports. Nothing there is fine."""
        with self._lock:
            if self.firewall is None:
                return
            ports = self._by_owner.get(owner, []) if owner in self._open else []
            with FilterBatch() as batch:
                if ports:
                    self.firewall.change(batch, {}, {port: owner for port in ports}, exact=True)
                if self.replies is not None:
                    self.replies.release(batch, owner)
            self._open.discard(owner)

    def release(self, owner: str) -> list[int]:
        """Drop every hold of ``owner`` (shutting its rules if still open); returns the ports freed.
        Unknown owner: []."""
        with self._lock:
            if owner in self._open:
                self.shut(owner)
            ports = self._by_owner.get(owner, [])
            if not ports:
                return []
            for port in ports:
                del self._held[port]
            del self._by_owner[owner]
            return list(ports)

    def held(self) -> dict[int, str]:
        """{port: owner} of every hold, fixed ports outside the range included."""
        with self._lock:
            return dict(self._held)

    def owned(self, owner: str) -> list[int]:
        with self._lock:
            return list(self._by_owner.get(owner, []))

    def free_count(self) -> int:
        """Ports of the range nobody in this table holds (a process outside Galaxy may still use one)."""
        with self._lock:
            inside = sum(1 for port in self._held if self.lo <= port <= self.hi)
            return self.hi - self.lo + 1 - inside

    # -- internals -------------------------------------------------------------------------------

    def _ensure_once(self) -> None:
        if not self._ensured and (self.firewall is not None or self.reserve):
            self.ensure()

    def _check_fixed(self, port: int) -> None:
        holder = self._held.get(port)
        if holder is not None:
            raise ResourceUnavailable(f"port {port} is held by {holder!r}", field="fixed")
        if not self._probe(port):
            where = "inside" if self.lo <= port <= self.hi else "outside"
            raise ResourceUnavailable(
                f"port {port} ({where} the range {self.lo}-{self.hi}) is in use on this host "
                "by a process Galaxy did not start", field="fixed")

    def _pick(self, count: int, taken: set[int]) -> list[int]:
        """``count`` free ports, next-fit from where the last search stopped.

        Next-fit rather than lowest-first so a port just released is the last to be handed out
        again: clients of its previous tenant get refused instead of reaching a stranger.
        """
        if count == 0:
            return []
        size = self.hi - self.lo + 1
        picked: list[int] = []
        offset = self._cursor - self.lo
        for step in range(size):
            port = self.lo + (offset + step) % size
            if port in self._held or port in taken or not self._probe(port):
                continue
            picked.append(port)
            if len(picked) == count:
                self._cursor = self.lo + (offset + step + 1) % size
                return picked
        raise ResourceUnavailable(
            f"need {count} free ports in {self.lo}-{self.hi}, only {len(picked)} are free", field="dynamic")

    def _note(self) -> str:
        """What the chain remembers for the next incarnation: reserved ports that were not ours."""
        if not self.reserve or not self._kept_reserved:
            return ""
        note = "kept=" + format_spans(self._kept_reserved)
        return note if len(note) <= NOTE_MAX else "kept=unknown"

    def _set(self, holds: Mapping[int, str]) -> None:
        self._held = dict(holds)
        self._by_owner = {}
        for port, owner in sorted(holds.items()):
            self._by_owner.setdefault(owner, []).append(port)
        self._open = set(self._by_owner) if self.firewall is not None else set()

    def _check_ephemeral(self) -> None:
        eph_lo, eph_hi = ephemeral_range()
        if self.lo <= eph_lo and eph_hi <= self.hi:
            raise InvalidInput(f"range {self.lo}-{self.hi} covers the whole ephemeral port range "
                               f"{eph_lo}-{eph_hi} (net.ipv4.ip_local_port_range)", field="range")
        overlap = None if (self.hi < eph_lo or self.lo > eph_hi) else (max(self.lo, eph_lo), min(self.hi, eph_hi))
        self.ephemeral_overlap = overlap
        if overlap is not None:
            log.log(logging.INFO if self.reserve else logging.WARNING,
                    "port range %d-%d overlaps the ephemeral ports %d-%d in %d-%d; %s",
                    self.lo, self.hi, eph_lo, eph_hi, overlap[0], overlap[1],
                    "reserved through ip_local_reserved_ports" if self.reserve
                    else "NOT reserved (reserve=False): the kernel may hand them out")


def _parse_kept(note: str | None) -> list[Span] | None:
    """The spans a chain note says were reserved before Galaxy; None when it cannot say."""
    if note is None:
        return None
    for token in note.split():
        if token.startswith("kept="):
            try:
                return parse_spans(token[len("kept="):])
            except InvalidInput:
                return None
    return []


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


__all__ = ["PortTable"]
