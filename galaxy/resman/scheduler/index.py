"""Candidate sources: hosts by pool and by (pool, label), kept up to date as hosts come and change.

A group asks for one pool and maybe labels; its candidates are the smallest of the matching lists,
so a group that wants a rare label scans only the hosts that have it. Lists keep registration order
(stable, so the bin-pack cursor means something) and are changed only when a host joins, moves pool
or changes labels — never on a placement.
"""

from __future__ import annotations

from collections.abc import Iterable

from galaxy.resman.scheduler.hostview import HostView

SourceKey = tuple[str, str | None]      # (pool, label or None for the whole pool)


class HostIndex:
    def __init__(self) -> None:
        self.hosts: dict[str, HostView] = {}
        self._lists: dict[SourceKey, list[HostView]] = {}

    def __len__(self) -> int:
        return len(self.hosts)

    def get(self, host_id: str) -> HostView | None:
        return self.hosts.get(host_id)

    def add(self, host: HostView) -> None:
        if host.id in self.hosts:
            self.remove(host.id)
        self.hosts[host.id] = host
        for key in self._keys(host):
            self._lists.setdefault(key, []).append(host)

    def remove(self, host_id: str) -> HostView | None:
        host = self.hosts.pop(host_id, None)
        if host is not None:
            for key in self._keys(host):
                members = self._lists.get(key)
                if members is not None:
                    members[:] = [h for h in members if h is not host]
                    if not members:
                        del self._lists[key]
        return host

    def update(self, host: HostView, *, pool: str | None = None, labels: Iterable[str] | None = None) -> None:
        """Move a host to another pool and/or label set, keeping the lists consistent.

        Every registration calls this; removal scans the host's lists, so a host that stays where
        it was (nearly always) is left alone: 10,000 registrations must not cost 10,000 scans."""
        new_labels = frozenset(labels) if labels is not None else None
        if self.hosts.get(host.id) is host and (pool is None or pool == host.pool) \
                and (new_labels is None or new_labels == host.labels):
            return
        self.remove(host.id)
        if pool is not None:
            host.pool = pool
        if new_labels is not None:
            host.labels = new_labels
        self.add(host)

    def pool(self, pool: str) -> list[HostView]:
        return self._lists.get((pool, None), [])

    def source(self, pool: str, labels: Iterable[str]) -> tuple[SourceKey, list[HostView], str | None]:
        """The smallest candidate list for a pool and labels, and the label it was chosen by.

        Returns an empty list (and the label) when some label has no host in the pool at all."""
        best_key: SourceKey = (pool, None)
        best = self._lists.get(best_key, [])
        chosen: str | None = None
        for label in labels:
            key = (pool, label)
            members = self._lists.get(key, [])
            if not members:
                return key, [], label
            if len(members) < len(best) or chosen is None:
                best_key, best, chosen = key, members, label
        return best_key, best, chosen

    def pools(self) -> list[str]:
        return sorted({pool for pool, label in self._lists if label is None})

    @staticmethod
    def _keys(host: HostView) -> list[SourceKey]:
        return [(host.pool, None), *((host.pool, label) for label in host.labels)]
