"""Each container answers only on its own ports: a filter on the replies its sockets send.

Containers share the host's network namespace, so a service could listen on any free port; the
INPUT chain (``_firewall``) polices only the Agent's range. What stays true of every inbound flow,
whatever its port, is that the container's socket must answer it, and a socket belongs to the v2
cgroup of the process that made it. So, in the legacy ``filter`` table of the calling thread's
namespace::

    -A OUTPUT -m conntrack --ctdir REPLY -m comment --comment galaxy:replies -j GXR-<tag>   (first)
    -A GXR-<tag> -m cgroup --path <container cgroup> -m comment --comment "galaxy:<owner>" -j GXC-<hash>
    -A GXC-<hash> -p tcp --sport P -j RETURN                           one pair per port it was given
    -A GXC-<hash> -p udp --sport P -j RETURN
    -A GXC-<hash> -j DROP                                               any other answer

A flow the container begins itself (an outgoing connection, from any port) is ``ORIGINAL`` and never
enters the chain; a SYN-ACK or datagram answering a peer from a port the container was not given is
dropped, so the peer sees nothing there. The one conntrack match sits on the jump rather than at the
end of every container's chain: legacy iptables rewrites and re-checks the whole table on each
commit, and a conntrack match per container was a third of a commit's kernel time (500 containers:
6.0 → 4.1 ms of system time per commit, measured). The per-container chain is named by a hash of the owner (chain
names hold 28 bytes; container ids 63), and the jump's comment names the owner, so the rules are
their own durable record across Agent restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from galaxy.ports._firewall import CHAIN_PREFIX, OWNER_PREFIX, chain_name, check_owner
from galaxy.ports._iptc import OUTPUT, FilterBatch

PROTOCOLS = ("tcp", "udp")
JUMP_COMMENT = "galaxy:replies"


def owner_chain(owner: str) -> str:
    return "GXC-" + hashlib.blake2b(owner.encode(), digest_size=10).hexdigest()


class ReplyFilter:
    """The chain ``GXR-<tag>`` and one ``GXC-<hash>`` chain per container (see the module docstring)."""

    def __init__(self, tag: str) -> None:
        self.chain = "GXR-" + chain_name(tag)[len(CHAIN_PREFIX):]

    def ensure_chain(self) -> None:
        """Make the chain and its jump from OUTPUT; a jump of an older layout (every packet, not only
        replies: its containers' chains matched the direction themselves) is replaced."""
        with FilterBatch() as batch:
            if not batch.is_chain(self.chain):
                batch.create_chain(self.chain)
            targets = batch.targets(OUTPUT)
            if self.chain in targets:
                jumps = batch.rules(OUTPUT, frozenset({self.chain}))
                if all(view.comment == JUMP_COMMENT for view in jumps):
                    return
                for index in reversed([i for i, t in enumerate(targets) if t == self.chain]):
                    batch.delete_at(OUTPUT, index)
            batch.insert(OUTPUT, batch.reply_jump_rule(self.chain, JUMP_COMMENT), 0)

    def confine(self, batch: FilterBatch, owner: str, cgroup_path: str, ports: Iterable[int]) -> None:
        """(Re)write ``owner``'s rules in ``batch``: its sockets (cgroup ``cgroup_path``, which must
        exist when the batch commits) may answer on ``ports`` only. Idempotent."""
        check_owner(owner)
        sub = owner_chain(owner)
        if not batch.is_chain(self.chain):
            batch.create_chain(self.chain)
            batch.insert(OUTPUT, batch.reply_jump_rule(self.chain, JUMP_COMMENT), 0)
        self._unhook(batch, sub)
        if batch.is_chain(sub):
            batch.flush(sub)
        else:
            batch.create_chain(sub)
        for port in sorted(set(ports)):
            for protocol in PROTOCOLS:
                batch.append(sub, batch.sport_rule(protocol, port, "RETURN"))
        batch.append(sub, batch.drop_rule())
        # The kernel resolves the path from the v2 root; a leading "/" makes it match nothing.
        batch.append(self.chain, batch.cgroup_jump_rule(cgroup_path.lstrip("/"), sub, OWNER_PREFIX + owner))

    def release(self, batch: FilterBatch, owner: str) -> None:
        """Remove ``owner``'s rules in ``batch``; nothing there is fine."""
        sub = owner_chain(owner)
        if not batch.is_chain(self.chain):
            return
        self._unhook(batch, sub)
        if batch.is_chain(sub):
            batch.flush(sub)
            batch.delete_chain(sub)

    def owners(self) -> set[str]:
        """Owners with rules now (read from the jumps' comments)."""
        with FilterBatch() as batch:
            if not batch.is_chain(self.chain):
                return set()
            return {v.comment[len(OWNER_PREFIX):] for v in batch.rules(self.chain)
                    if v.comment.startswith(OWNER_PREFIX)}

    def remove_chain(self) -> None:
        """Remove the jump from OUTPUT, every per-container chain and the chain itself."""
        with FilterBatch() as batch:
            if not batch.is_chain(self.chain):
                return
            for index in reversed([i for i, t in enumerate(batch.targets(OUTPUT)) if t == self.chain]):
                batch.delete_at(OUTPUT, index)
            subs = {t for t in batch.targets(self.chain) if t.startswith("GXC-")}
            batch.flush(self.chain)
            for sub in subs:
                batch.flush(sub)
                batch.delete_chain(sub)
            batch.delete_chain(self.chain)

    def _unhook(self, batch: FilterBatch, sub: str) -> None:
        for index in reversed([i for i, t in enumerate(batch.targets(self.chain)) if t == sub]):
            batch.delete_at(self.chain, index)
