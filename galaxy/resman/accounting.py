"""Usage accounting: what each user's containers used and reserved, per pool and hour.

The engine hands every container list an Agent reports to :meth:`Meter.observe` (loop thread, under
the engine lock). Billing is by intervals between two reports of the same host:

* ``cpu_used``: the growth of the container's cumulative cgroup cpu seconds (a counter that went down
  means the container restarted its cgroup: the new value is counted from 0);
* ``memory_used``: the memory the container holds now × the interval;
* ``cpu_reserved`` / ``memory_reserved`` / ``disk_reserved`` per medium: what its group's container
  template reserves × the interval.

The interval is capped at 3 × ``poll_interval``: a host that went silent (or a ResMan that was not
polling) does not bill reserved time nobody observed. A container seen for the first time (new, or
new to this leader) only sets its baseline. A container whose group ResMan does not know is not billed.

Sums are kept in memory per (owner, pool, hour); every ``usage_flush`` seconds the loop hands the
sums over to a flusher thread, which adds them to the day records (``galaxy.tenancy.usage``) and
writes those through the leader's fenced StateStore — so the loop never waits on ZooKeeper, and a
deposed leader cannot write. A new leader reads a day record before its first addition to it, so a
failover loses at most one flush interval of figures.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from galaxy.coord import StateStore
from galaxy.errors import GalaxyError, NotLeader
from galaxy.resman.model import Group
from galaxy.resman.settings import ResManSettings
from galaxy.tenancy.usage import HOUR, USAGE, add_figures, day_of, record_key, rounded

log = logging.getLogger(__name__)

GIB = float(1 << 30)
KEEP_DAYS = 2                 # day records kept in the flusher's memory: today and yesterday
HourKey = tuple[str, str, int]   # (owner, pool, hour start)


class _Reserve:
    """What one container of a group reserves, cached while the group's template object is the same."""

    __slots__ = ("cpu", "disks", "group", "memory", "owner", "pool", "template")

    def __init__(self, group: Group) -> None:
        t = group.template
        self.group = group
        self.template = t
        self.owner = group.owner
        self.pool = group.pool
        self.cpu = float(t.get("cpu") or 0.0)
        self.memory = float(t.get("memory") or 0)
        disks: dict[str, float] = {}
        for d in t.get("disks") or ():
            if isinstance(d, dict) and isinstance(d.get("medium"), str):
                disks[d["medium"]] = disks.get(d["medium"], 0.0) + float(d.get("size") or 0)
        self.disks = tuple(disks.items())


def figures_of(sums: dict[tuple[_Reserve, int], list[float]]) -> dict[HourKey, dict[str, Any]]:
    """Sums per (group reserve, hour) as figures per (owner, pool, hour), in the record's units
    (core-s, GiB-s): reserved figures are the reserve × the container-seconds counted."""
    out: dict[HourKey, dict[str, Any]] = {}
    for (r, hour), (cpu_used, container_seconds, memory_used) in sums.items():
        key = (r.owner, r.pool, hour)
        f = out.get(key)
        if f is None:
            f = out[key] = {"cpu_used": 0.0, "cpu_reserved": 0.0, "memory_used": 0.0, "memory_reserved": 0.0,
                            "disk_reserved": {}}
        f["cpu_used"] += cpu_used
        f["cpu_reserved"] += r.cpu * container_seconds
        f["memory_used"] += memory_used / GIB
        f["memory_reserved"] += r.memory * container_seconds / GIB
        disk = f["disk_reserved"]
        for medium, size in r.disks:
            disk[medium] = disk.get(medium, 0.0) + size * container_seconds / GIB
    return out


class Meter:
    def __init__(self, groups: Callable[[], Mapping[str, Group]], store: StateStore | None,
                 settings: ResManSettings, *, wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._groups = groups
        self._store = store
        self._cap = 3 * settings.poll_interval
        self._flush_every = settings.usage_flush
        self._retain_days = settings.usage_retain_days
        self._expired_through = ""          # the day the last expiry sweep ran (one sweep a day)
        self._wall = wall
        self._clock = clock
        self._offset = wall() - clock()          # engine clock -> epoch seconds
        self._hosts: dict[str, tuple[float, dict[str, float | None]]] = {}   # host -> (at, cid -> cpu s)
        self._reserves: dict[str, _Reserve] = {}
        self._sums: dict[tuple[_Reserve, int], list[float]] = {}   # [cpu used, container-s, memory B·s]
        self._due = clock() + self._flush_every
        # flusher side
        self._handed: queue.SimpleQueue[dict[tuple[_Reserve, int], list[float]]] = queue.SimpleQueue()
        self._unapplied: dict[HourKey, dict[str, Any]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.flushes = 0
        self.write_errors = 0
        self.handed = 0               # sums handed over by the loop ...
        self.written = 0              # ... and of those, written to ZooKeeper

    # ---- loop thread ------------------------------------------------------------------------------
    def observe(self, host_id: str, pool: str, containers: list[Any], at: float) -> None:
        """Bill the interval since this host's last report (see the module docs).

        The loop runs once per reported container on every poll of every host, so it only counts per
        group name; groups are looked up once per name afterwards (bench/bench_accounting.py).
        """
        last = self._hosts.get(host_id)
        if last is not None and at <= last[0]:
            return                                  # a late or repeated report: already billed
        previous: dict[str, float | None] = last[1] if last is not None else {}
        dt = min(at - last[0], self._cap) if last is not None else 0.0
        seen: dict[str, float | None] = {}
        per_name: dict[Any, list[float]] = {}       # group name -> [cpu used, memory B·s, containers]
        for info in containers:
            if type(info) is not dict or info.get("state") != "running":
                continue
            cid = info.get("id")
            if type(cid) is not str:
                continue
            usage = info.get("usage")
            if type(usage) is not dict:
                seen[cid] = None
                if cid in previous:
                    acc = per_name.get(info.get("group"))
                    if acc is None:
                        per_name[info.get("group")] = [0.0, 0.0, 1]
                    else:
                        acc[2] += 1
                continue
            cpu = usage.get("cpu_seconds")
            if type(cpu) is not float:
                cpu = float(cpu) if type(cpu) is int else None
            seen[cid] = cpu
            if cid not in previous:
                continue                            # first sight: the baseline only
            name = info.get("group")
            acc = per_name.get(name)
            if acc is None:
                acc = per_name[name] = [0.0, 0.0, 0]
            before = previous[cid]
            if cpu is not None and before is not None:
                acc[0] += cpu - before if cpu >= before else cpu
            memory = usage.get("memory")
            if type(memory) is int or type(memory) is float:
                acc[1] += memory * dt
            acc[2] += 1
        self._hosts[host_id] = (at, seen)
        if per_name and dt > 0:
            self._add(self._resolve(per_name), at + self._offset, dt)
        if at >= self._due:
            self.hand_over(at)

    def _resolve(self, per_name: dict[Any, list[float]]) -> dict[_Reserve, list[float]]:
        """Per-name sums to per-group reserves; names of groups ResMan does not know are dropped."""
        groups = self._groups()
        reserves = self._reserves
        out: dict[_Reserve, list[float]] = {}
        for name, acc in per_name.items():
            group = groups.get(name) if type(name) is str else None
            if group is None:
                continue
            r = reserves.get(name)
            if r is None or r.group is not group or r.template is not group.template:
                r = reserves[name] = _Reserve(group)
            out[r] = acc
        return out

    def _add(self, per_group: dict[_Reserve, list[float]], end: float, dt: float) -> None:
        """Add one report's sums to the (group reserve, hour) sums; reserved figures are multiplied out
        at hand-over, so a report costs a few additions per group it shows."""
        hour = int(end // HOUR) * HOUR
        start = end - dt
        sums = self._sums
        if start >= hour:
            for r, (cpu_used, memory_used, count) in per_group.items():
                s = sums.get((r, hour))
                if s is None:
                    sums[(r, hour)] = [cpu_used, count * dt, memory_used]
                else:
                    s[0] += cpu_used
                    s[1] += count * dt
                    s[2] += memory_used
            return
        for bucket, share in ((hour, (end - hour) / dt), (hour - HOUR, (hour - start) / dt)):
            for r, (cpu_used, memory_used, count) in per_group.items():
                s = sums.setdefault((r, bucket), [0.0, 0.0, 0.0])
                s[0] += cpu_used * share
                s[1] += count * dt * share
                s[2] += memory_used * share

    def pending(self) -> dict[HourKey, dict[str, Any]]:
        """The figures not handed over yet (loop thread, or a test driving the Meter alone)."""
        return figures_of(self._sums)

    def hand_over(self, at: float | None = None) -> None:
        """Give the sums so far to the flusher (loop thread): a dict swap and a queue put; the flusher
        multiplies them out."""
        now = self._clock() if at is None else at
        self._due = now + self._flush_every
        self._offset = self._wall() - self._clock()
        self._forget_silent_hosts(now)
        if self._sums:
            sums, self._sums = self._sums, {}
            self.handed += 1
            self._handed.put(sums)


    def _forget_silent_hosts(self, now: float) -> None:
        horizon = now - max(10 * self._cap, 2 * self._flush_every)
        for host_id in [h for h, (at, _) in self._hosts.items() if at < horizon]:
            del self._hosts[host_id]
        groups = self._groups()
        for name in [n for n, r in self._reserves.items() if groups.get(n) is not r.group]:
            del self._reserves[name]

    # ---- flusher thread ---------------------------------------------------------------------------
    def start(self) -> Meter:
        self._thread = threading.Thread(target=self._run, name="resman-usage-flush", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop flushing (a demoted leader: its writes would be refused anyway)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def settled(self) -> bool:
        """True when every figure observed so far is in ZooKeeper (for tests and a clean hand-off)."""
        return not self._sums and self.written == self.handed and not self._dirty

    def _run(self) -> None:
        taken = 0
        while not self._stopping.is_set():
            try:
                handed = self._handed.get(timeout=min(1.0, self._flush_every))
            except queue.Empty:
                handed = None
            while handed is not None:
                taken += 1
                for key, figures in figures_of(handed).items():
                    add_figures(self._unapplied.setdefault(key, {}), figures)
                try:
                    handed = self._handed.get_nowait()
                except queue.Empty:
                    handed = None
            if not self._unapplied and not self._dirty:
                continue
            try:
                self.flush()
                self.written += taken
                taken = 0
            except NotLeader as err:
                log.warning("usage accounting stops: %s", err)
                return
            except GalaxyError as err:     # ZooKeeper away: keep the figures, try at the next hand-over
                self.write_errors += 1
                log.error("writing usage records failed (%s); retrying", err)
                self._stopping.wait(min(1.0, self._flush_every))
            except Exception:
                self.write_errors += 1
                log.exception("writing usage records failed; retrying")
                self._stopping.wait(min(1.0, self._flush_every))

    def flush(self) -> None:
        """Add what was handed over to the day records and write the changed ones (flusher thread)."""
        for user, pool, hour in self._unapplied:
            key = record_key(user, pool, day_of(hour))
            if key not in self._records:
                loaded = self._store.get(USAGE, key) if self._store is not None else None
                self._records[key] = loaded if loaded is not None else \
                    {"user": user, "pool": pool, "day": day_of(hour), "hours": {}}
        for (user, pool, hour), figures in self._unapplied.items():
            key = record_key(user, pool, day_of(hour))
            hours = self._records[key].setdefault("hours", {})
            hours[str(hour)] = rounded(add_figures(dict(hours.get(str(hour)) or {}), figures))
            self._dirty.add(key)
        self._unapplied = {}
        if self._store is not None and self._dirty:
            with self._store.batch() as batch:
                for key in self._dirty:
                    batch.put(USAGE, key, self._records[key])
        self._dirty.clear()
        self.flushes += 1
        self._expire_old()
        oldest = day_of(self._wall() - (KEEP_DAYS - 1) * 24 * HOUR)
        for key in [k for k, rec in self._records.items() if str(rec.get("day")) < oldest]:
            del self._records[key]

    def _expire_old(self) -> None:
        """Once a day, delete day records older than `usage_retain_days` (they would grow forever)."""
        today = day_of(self._wall())
        if self._store is None or self._expired_through == today:
            return
        cutoff = day_of(self._wall() - self._retain_days * 24 * HOUR)
        old = [key for key in self._store.keys(USAGE) if key.rsplit(":", 1)[-1] < cutoff]
        if old:
            with self._store.batch() as batch:
                for key in old:
                    batch.delete(USAGE, key)
            log.info("usage accounting: %d day records older than %s deleted", len(old), cutoff)
        self._expired_through = today

    def records(self) -> dict[str, dict[str, Any]]:
        """The day records this Meter added to (a copy; for tests and status)."""
        return {k: dict(v) for k, v in self._records.items()}


__all__ = ["Meter"]
