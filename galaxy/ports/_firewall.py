"""The Agent's own iptables chain: admit traffic to assigned ports, refuse it to the rest of the range.

Layout in the legacy ``filter`` table of the namespace the calling thread is in::

    -A INPUT -j GALAXY-<tag>                                  (inserted first, so it wins)
    -A GALAXY-<tag> -p tcp --dport P -m comment --comment "galaxy:<owner>" -j ACCEPT    one pair per
    -A GALAXY-<tag> -p udp --dport P -m comment --comment "galaxy:<owner>" -j ACCEPT    assigned port
    -A GALAXY-<tag> -p tcp --dport Q -m comment --comment "galaxy:<owner>" -j RETURN    a fixed port
    -A GALAXY-<tag> -p udp --dport Q -m comment --comment "galaxy:<owner>" -j RETURN    outside the range
    -A GALAXY-<tag> -p tcp --dport LO:HI -j REJECT --reject-with tcp-reset
    -A GALAXY-<tag> -p udp --dport LO:HI -j REJECT --reject-with icmp-port-unreachable

Why the owner rides in a comment: the chain is then the durable record of who holds what, so an
Agent that restarts rebuilds its table from the kernel (:meth:`PortFirewall.read`) and can never
disagree with the rules actually in force. Why RETURN for a fixed port outside the range: Galaxy does
not police ports outside its range (the host's own policy applies), but the hold must survive a
restart like any other; RETURN records it without changing any verdict.

Every method is one :class:`FilterBatch` (one table read, one atomic commit), but :meth:`PortFirewall.change`,
which adds to a caller's batch so a container's rules of both chains are one commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from galaxy.errors import InvalidInput
from galaxy.ports._errors import PortError
from galaxy.ports._iptc import INPUT, FilterBatch, RuleView

CHAIN_PREFIX = "GALAXY-"
CHAIN_MAX = 28                      # XT_EXTENSION_MAXNAMELEN - 1
TAG_MAX = CHAIN_MAX - len(CHAIN_PREFIX)
OWNER_PREFIX = "galaxy:"
OWNER_MAX = 200                     # the comment match holds 255 bytes
RANGE_COMMENT = "galaxy:range"      # on the closing REJECT rules
NOTE_MAX = 255 - len(RANGE_COMMENT) - 1
PROTOCOLS = ("tcp", "udp")
REJECT_WITH = {"tcp": "tcp-reset", "udp": "icmp-port-unreachable"}

_TAG_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9_.:@/+=-]+$")


def chain_name(tag: str) -> str:
    """``GALAXY-<tag>``; the tag must be 1–21 characters of ``[A-Za-z0-9_.-]``."""
    if not isinstance(tag, str) or not 1 <= len(tag) <= TAG_MAX or not _TAG_RE.match(tag):
        raise InvalidInput(f"owner tag must be 1-{TAG_MAX} characters of [A-Za-z0-9_.-], got {tag!r}",
                           field="owner_tag")
    return CHAIN_PREFIX + tag


def check_owner(owner: str) -> str:
    """Owners are written into rule comments: a bounded, quote-free, printable token."""
    if not isinstance(owner, str) or not 1 <= len(owner) <= OWNER_MAX or not _OWNER_RE.match(owner):
        raise InvalidInput(f"owner must be 1-{OWNER_MAX} characters of [A-Za-z0-9_.:@/+=-], got {owner!r}",
                           field="owner")
    return owner


class PortFirewall:
    """The chain ``GALAXY-<tag>`` policing ports ``lo..hi`` (see the module docstring for its rules)."""

    def __init__(self, tag: str, lo: int, hi: int) -> None:
        self.chain = chain_name(tag)
        self.lo = lo
        self.hi = hi

    # -- the chain itself ------------------------------------------------------------------------

    def exists(self) -> bool:
        with FilterBatch() as batch:
            return batch.is_chain(self.chain)

    def ensure_chain(self, note: str = "") -> None:
        """Make the chain, its two closing REJECT rules and the jump from INPUT; change nothing present.

        ``note`` (a short token list, no quotes) is kept in the comment of the closing TCP rule, a
        durable place for facts the next incarnation of the table needs (see :meth:`read_note`).
        """
        with FilterBatch() as batch:
            self._ensure(batch, note)

    def read_note(self) -> str | None:
        """The note :meth:`ensure_chain` stored; None when the chain does not exist."""
        with FilterBatch() as batch:
            if not batch.is_chain(self.chain):
                return None
            for view in batch.rules(self.chain, frozenset({"REJECT"})):
                if view.protocol == "tcp" and view.comment.startswith(RANGE_COMMENT):
                    return view.comment[len(RANGE_COMMENT):].strip()
            return ""

    def remove_chain(self) -> None:
        """Remove the jump(s) from INPUT, then the chain and all its rules. Absent already: no-op."""
        with FilterBatch() as batch:
            if not batch.is_chain(self.chain):
                return
            jump = batch.jump_rule(self.chain)
            for _ in range(batch.targets(INPUT).count(self.chain)):
                batch.delete(INPUT, jump)
            batch.flush(self.chain)
            batch.delete_chain(self.chain)

    # -- per-port rules --------------------------------------------------------------------------

    def allow(self, port: int, owner: str) -> None:
        self.apply(allow={port: owner})

    def deny(self, port: int, owner: str) -> None:
        self.apply(deny={port: owner})

    def apply(self, allow: Mapping[int, str] | None = None, deny: Mapping[int, str] | None = None,
              *, exact: bool = False) -> None:
        """Add the rules of ``allow`` and remove those of ``deny`` ({port: owner}) in one commit.

        Adding a rule that is there already, or removing one that is not, changes nothing, so a
        retried call is harmless. ``exact=True`` is for a caller that knows the chain's content
        (the port table): it skips the duplicate checks, which halves the work per rule.
        """
        with FilterBatch() as batch:
            self.change(batch, allow or {}, deny or {}, exact=exact)

    def read(self) -> dict[int, str]:
        """{port: owner} as recorded in the chain (empty when the chain does not exist)."""
        with FilterBatch() as batch:
            if not batch.is_chain(self.chain):
                return {}
            return self._holders(batch.rules(self.chain, frozenset({"ACCEPT", "RETURN"})))

    def reconcile(self, wanted: Mapping[int, str], note: str = "") -> None:
        """Make the chain hold exactly ``wanted`` ({port: owner}), creating it if needed, in one commit."""
        with FilterBatch() as batch:
            self._ensure(batch, note)
            kept: dict[int, set[str]] = {}
            for view in self._views(batch):
                port, owner = int(view.dport), view.comment[len(OWNER_PREFIX):]
                if wanted.get(port) == owner and view.target == self._target(port):
                    kept.setdefault(port, set()).add(view.protocol)
                else:
                    batch.delete(self.chain, batch.rule_from(view))
            missing = {port: owner for port, owner in wanted.items()
                       if kept.get(port, set()) != set(PROTOCOLS)}
            self.change(batch, missing, {})

    # -- internals -------------------------------------------------------------------------------

    def _ensure(self, batch: FilterBatch, note: str) -> None:
        if not batch.is_chain(self.chain):
            batch.create_chain(self.chain)
        wanted = [self._reject_view(proto, note) for proto in PROTOCOLS]
        targets = batch.targets(self.chain)
        rejects = batch.rules(self.chain, frozenset({"REJECT"}))
        tail_ok = rejects == wanted and targets[-len(wanted):] == ["REJECT"] * len(wanted)
        if not tail_ok:
            for view in rejects:
                batch.delete(self.chain, batch.rule_from(view))
            for view in wanted:
                batch.append(self.chain, batch.rule_from(view))
        jumps = batch.targets(INPUT).count(self.chain)
        if jumps == 0:
            batch.insert(INPUT, batch.jump_rule(self.chain), 0)
        elif jumps > 1:
            jump = batch.jump_rule(self.chain)
            for _ in range(jumps - 1):
                batch.delete(INPUT, jump)

    def change(self, batch: FilterBatch, allow: Mapping[int, str], deny: Mapping[int, str],
               *, exact: bool = False) -> None:
        """:meth:`apply` inside the caller's ``batch`` (committed with it)."""
        for port, owner in deny.items():
            for proto in PROTOCOLS:
                rule = self._port_rule(batch, proto, port, owner)
                deleted = batch.delete(self.chain, rule)
                while deleted and not exact:
                    deleted = batch.delete(self.chain, rule)
        for port, owner in allow.items():
            for proto in PROTOCOLS:
                rule = self._port_rule(batch, proto, port, owner)
                if not exact:
                    batch.delete(self.chain, rule)   # delete-then-insert keeps exactly one copy
                batch.insert(self.chain, rule, 0)

    def _target(self, port: int) -> str:
        return "ACCEPT" if self.lo <= port <= self.hi else "RETURN"

    def _port_rule(self, batch: FilterBatch, proto: str, port: int, owner: str) -> object:
        return batch.port_rule(proto, str(port), self._target(port), comment=OWNER_PREFIX + owner)

    def _reject_view(self, proto: str, note: str) -> RuleView:
        comment = (RANGE_COMMENT + (" " + note if note else "")) if proto == "tcp" else RANGE_COMMENT
        return RuleView(protocol=proto, dport=f"{self.lo}:{self.hi}", comment=comment, target="REJECT",
                        reject_with=REJECT_WITH[proto])

    def _views(self, batch: FilterBatch) -> list[RuleView]:
        views = batch.rules(self.chain, frozenset({"ACCEPT", "RETURN"}))
        return [v for v in views if v.comment.startswith(OWNER_PREFIX) and v.dport.isdigit()]

    def _holders(self, views: Iterable[RuleView]) -> dict[int, str]:
        holders: dict[int, str] = {}
        for view in views:
            if not view.comment.startswith(OWNER_PREFIX) or not view.dport.isdigit():
                continue
            port, owner = int(view.dport), view.comment[len(OWNER_PREFIX):]
            other = holders.setdefault(port, owner)
            if other != owner:
                raise PortError(f"chain {self.chain} gives port {port} to both {other!r} and {owner!r}")
        return holders


__all__ = ["PortFirewall", "chain_name", "check_owner", "CHAIN_PREFIX", "OWNER_PREFIX"]
