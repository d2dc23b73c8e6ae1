"""ResMan ⇄ Agents: registrations, polls, reports, and the create/destroy calls (loop thread only).

An Agent's report (registration or poll answer) is compared with ResMan's records of that host:

* a container the records place elsewhere, or do not know, is destroyed — never in safe mode;
* a placed container the Agent lists as running is `running`; as exited, it is replaced;
* a placement the Agent does not list and that no create is under way for (a new leader took over
  between the write and the create) is created again — creates are idempotent by id;
* a running container missing from two reports in a row has vanished and is replaced.

A poll carries the digest of the last full report applied for that host; an Agent whose list has not
changed since answers `{"unchanged": digest, "free": …, "usage": {id: usage}}` without the list, and
the cached list (with the fresh usage figures) is matched instead — when the cached list matched the
records exactly, that is a check of each id, not a match of each container. The create answer is the
Agent's word that the container runs: Agents send no `container.state` "running" event for it.

Creates go out at most `creates_per_host` at a time per Agent, and only once the placement is in
ZooKeeper. A failed create sends the container back to pending: the group backs off
(exponentially, capped) and avoids that host for `avoid_for` seconds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from galaxy.coord import is_sealed, open_sealed
from galaxy.errors import GalaxyError, NotFound, ProtocolError
from galaxy.mesh import Outcome
from galaxy.protocol import AgentMethods
from galaxy.resman.hosts import ALIVE, HostEntry
from galaxy.resman.model import ALLOCATING, DESTROYING, EXITED, RUNNING, Container
from galaxy.tenancy.principal import speaks_for_host

if TYPE_CHECKING:
    from galaxy.resman.engine import Engine

log = logging.getLogger(__name__)

MISSING_BEFORE_VANISHED = 2


# ---- registration, events, polls ----------------------------------------------------------------

def registered(engine: Engine, facts: dict[str, Any], received: float) -> None:
    known = facts["id"] in engine.hosts.entries
    entry = engine.hosts.register(facts, received)
    if engine.pool_seen is not None:
        engine.pool_seen(entry.view.pool)
    if not entry.persisted:
        engine.dirty_hosts.add(entry.id)
    log.info("agent %s registered (pool %s, %d containers)", entry.id, entry.view.pool,
             len(facts.get("containers") or ()))
    engine.trace("host", entry.id, "registered", "", known=known, containers=len(facts.get("containers") or ()))
    report(engine, entry, facts.get("free") or {}, facts.get("containers") or [], received, facts.get("digest"))
    # New room: groups waiting for hosts may fit now. Only those: reconciling every group on each of
    # 10,000 registrations (and re-registrations) was a scan of every container per round.
    engine.touched.update(name for name, g in engine.groups.items() if g.pending or g.reason)


def disconnected(engine: Engine, host_id: str) -> None:
    entry = engine.hosts.get(host_id)
    if entry is not None:
        entry.connected = False


def rejoined(engine: Engine, host_id: str) -> None:
    """A known host is heard on the mesh again (after the mesh had lost it): poll it again.

    An Agent paused past the lost timeout (SIGSTOP, a frozen VM) resumes with its connection intact
    and, from its side, nothing happened, so it does not register again. Lost hosts that are still
    (or again) connected keep being polled; the Agent's poll answer carries its registration facts,
    and `polled` takes such an answer from an unregistered host as a registration: the host is back,
    and its old containers, which no record places there any more, are destroyed. Identities that are
    not hosts (admin clients, AppMasters) are ignored.
    """
    entry = engine.hosts.get(host_id)
    if entry is not None:
        entry.connected = True


def event(engine: Engine, host_id: str, info: dict[str, Any]) -> None:
    entry = engine.hosts.get(host_id)
    if entry is None or not entry.registered:
        return
    now = engine.clock()
    engine.hosts.heard(entry, now)
    entry.last_news = now
    cid = info.get("id")
    if not isinstance(cid, str):
        return
    c = engine.containers.get(cid)
    if info.get("state") == "destroyed":
        if c is not None and c.host == host_id and c.state == DESTROYING:
            engine.stats["destroyed"] += 1
            engine.forget(c)
        return
    apply_info(engine, entry, info, engine.clock())


def poll_due(engine: Engine, now: float) -> None:
    # A late answer is still a sign of life: under load (10,000 hosts, a busy mesh thread) answers can
    # take seconds, and a short timeout would drop them and let a live host be declared lost.
    settings = engine.settings
    timeout = max(1.0, 2 * settings.poll_interval, settings.lost_seconds / 2)
    busy = now - engine.last_create_activity < settings.poll_interval
    for entry in engine.hosts.due_polls(now, busy):
        entry.polling = True
        # Unregistered hosts get no digest: their full answer is also their registration (polled).
        known = {"digest": entry.report_digest} if entry.registered and entry.report_digest else None
        engine.request(entry.id, AgentMethods.RESOURCES, known, timeout,
                       lambda f, at, e=entry, sent=now: polled(engine, e, sent, at, f))


def answered_by_host(outcome: Outcome, host_id: str) -> bool:
    """Did the host's own Agent key answer? The mesh answers a request only from the connection and
    key it went to, and ResMan's identity policy gives a host's name only to its key; this says so
    again where an answer becomes the host's state (a poll answer may register a host)."""
    return speaks_for_host(outcome.key_name, host_id)   # only `agent` or `agent-<host>` do: Agent keys


def polled(engine: Engine, entry: HostEntry, sent: float, answered: float, outcome: Outcome) -> None:
    entry.polling = False
    if outcome.exception() is not None or engine.hosts.get(entry.id) is not entry:
        return
    if not answered_by_host(outcome, entry.id):
        engine.stats["answers_refused"] += 1
        log.warning("ignoring a poll answer for host %s from key %r: not that host's Agent key",
                    entry.id, outcome.key_name)
        return
    if not entry.registered:
        body = outcome.result()
        if isinstance(body, dict) and body.get("id") == entry.id and isinstance(body.get("capacity"), dict) \
                and isinstance(body.get("free"), dict) and isinstance(body.get("containers", []), list):
            log.warning("agent %s answered a poll while not registered: taking it as a registration", entry.id)
            registered(engine, body, answered)
        return
    engine.poll_latencies.append(answered - sent)
    engine.stats["polls"] += 1
    body = outcome.result()
    if not isinstance(body, dict):
        return
    engine.hosts.heard(entry, answered)
    if "unchanged" in body:
        if body["unchanged"] == entry.report_digest and entry.report_digest is not None:
            report_unchanged(engine, entry, body.get("free") or {}, body.get("usage"), sent)
        else:
            entry.report_digest = None          # not the list we hold (a report in between): ask in full
        return
    if isinstance(body.get("capacity"), dict):
        entry.view.set_capacity(body["capacity"], None)
    report(engine, entry, body.get("free") or {}, body.get("containers") or [], sent, body.get("digest"))


# ---- reports ------------------------------------------------------------------------------------

def report(engine: Engine, entry: HostEntry, free: dict[str, Any], containers: list[Any], sent: float,
           digest: Any = None) -> None:
    """Match one Agent report against the records of that host (see the module docs)."""
    reported: set[str] = set()
    used_ports: set[int] = set()
    records = engine.containers
    host_id = entry.id
    clean = True
    # Runs for every container of every poll answer (10,000 hosts a second): kept to plain lookups.
    for info in containers:
        if not isinstance(info, dict):
            continue
        cid = info.get("id")
        if not isinstance(cid, str):
            continue
        reported.add(cid)
        ports = info.get("ports") or {}
        if isinstance(ports, dict):
            for port in ports.values():
                if isinstance(port, int):
                    used_ports.add(port)
        c = records.get(cid)
        if c is not None and c.state == RUNNING and c.host == host_id and info.get("state") == "running" \
                and c.ports == ports:
            c.missing = 0                   # the common case on a steady fleet: nothing changed
            continue
        clean = False
        apply_info(engine, entry, info, sent)
    entry.report_digest = digest if isinstance(digest, str) else None
    entry.report_containers = containers
    entry.report_ids = reported
    entry.report_ports = used_ports
    entry.report_clean = clean
    _settle(engine, entry, free, containers, reported, used_ports, sent)


def report_unchanged(engine: Engine, entry: HostEntry, free: dict[str, Any], usage: Any, sent: float) -> None:
    """The Agent's list is the one last reported: match the cached list, with the fresh usage figures.

    When every container of that list matched the records as running here, and still does, nothing
    in it needs a look (the steady state: a check per id); otherwise it is matched in full again.
    """
    containers = entry.report_containers
    if isinstance(usage, dict) and usage:
        containers = [{**info, "usage": usage[info["id"]]} if info["id"] in usage else info
                      for info in containers]
    if not entry.report_clean:
        report(engine, entry, free, containers, sent, entry.report_digest)
        return
    records = engine.containers
    host_id = entry.id
    for cid in entry.report_ids:
        c = records.get(cid)
        if c is None or c.state != RUNNING or c.host != host_id:
            report(engine, entry, free, containers, sent, entry.report_digest)
            return
        c.missing = 0
    _settle(engine, entry, free, containers, entry.report_ids, entry.report_ports, sent, unchanged=True)


def _settle(engine: Engine, entry: HostEntry, free: dict[str, Any], containers: list[Any], reported: set[str],
            used_ports: set[int], sent: float, unchanged: bool = False) -> None:
    """The rest of a report: free figures, usage, and the records' containers the Agent did not list.

    An unchanged list with the same free figures and no placement waiting to show up in them leaves
    the host's view as it is (the steady state: recomputing it copied its port set every poll)."""
    view = entry.view
    if not (unchanged and not view.unreported and free == entry.report_free):
        view.report(free, reported, used_ports)
        entry.report_free = free
    if engine.meter is not None:
        engine.meter.observe(entry.id, entry.view.pool, containers, sent)
    safe = engine.safe.on
    for cid in entry.view.containers - reported:
        c = engine.containers.get(cid)
        if c is None:
            continue
        if c.state == ALLOCATING:
            if not c.create_sent and not safe and cid in engine.journal.written:
                engine.create_ready.append(cid)        # placed by an earlier leader, never created
        elif c.state == RUNNING and c.confirmed_at < sent:
            c.missing += 1
            if c.missing >= MISSING_BEFORE_VANISHED and not safe:
                exited(engine, c, {"lost": True, "why": "the Agent no longer lists it"})
        elif c.state == DESTROYING and not c.destroy_sent:
            engine.stats["destroyed"] += 1
            engine.forget(c)                           # already gone from the Agent


def apply_info(engine: Engine, entry: HostEntry, info: dict[str, Any], sent: float) -> None:
    cid = info["id"]
    c = engine.containers.get(cid)
    if c is None or c.host != entry.id:
        where = "unknown" if c is None else f"placed on {c.host}"
        destroy_unknown(engine, entry, cid, f"container {cid} is {where}")
        return
    c.missing = 0
    state = info.get("state")
    if c.state == DESTROYING:
        if not c.destroy_sent and cid not in engine.destroy_ready:
            engine.destroy_ready.append(cid)
        return
    if state == "running":
        if isinstance(info.get("ports"), dict):
            c.ports = dict(info["ports"])
        if c.state != RUNNING:
            c.state = RUNNING
            c.confirmed_at = engine.clock()
            if c.group in engine.rolling:      # a rolling update waits on it; otherwise nothing to redo
                engine.touched.add(c.group)
    elif state == "exited" and c.state in (ALLOCATING, RUNNING) and not engine.safe.on:
        exited(engine, c, info.get("exit"))


def exited(engine: Engine, c: Container, exit_info: Any) -> None:
    """PID 1 of the container ended (or the container vanished): replace it, with the group's backoff."""
    engine.stats["exited"] += 1
    c.exit = exit_info
    c.state = EXITED
    group = engine.groups.get(c.group)
    if group is not None:
        backoff(engine, group)
    engine.trace("container", c.id, "exited", "", exit=exit_info, host=c.host)
    engine.retire(c, f"exited: {exit_info}")


def destroy_unknown(engine: Engine, entry: HostEntry, cid: str, why: str) -> None:
    if engine.safe.on or cid in entry.destroying:
        return
    entry.destroying.add(cid)
    engine.stats["unknown_destroyed"] += 1
    log.info("destroying %s on %s: %s", cid, entry.id, why)
    if engine.settings.trace_containers:
        engine.trace("container", cid, "destroy_unwanted", why, host=entry.id)

    def done(outcome: Outcome, answered: float) -> None:
        entry.destroying.discard(cid)
    engine.request(entry.id, AgentMethods.DESTROY, {"id": cid}, engine.settings.destroy_timeout, done)


# ---- creates and destroys -----------------------------------------------------------------------

def backoff(engine: Engine, group: Any) -> None:
    s = engine.settings
    group.failures += 1
    delay = min(s.backoff_max, s.backoff_min * 2 ** min(group.failures - 1, 20))
    group.not_before = engine.clock() + delay


def dispatch(engine: Engine, now: float) -> None:
    """Send what this round's write made safe: creates (bounded per Agent) and destroys."""
    journal = engine.journal
    ready = engine.create_ready
    waiting = engine.create_waiting
    # A placement waiting for its write can only become sendable when a write commits: between commits
    # (most rounds, in a burst) the thousands waiting are not looked at again.
    if engine.dispatched_at_commit != journal.commits:
        engine.dispatched_at_commit = journal.commits
        ready = waiting + ready
        waiting = engine.create_waiting = []
    engine.create_ready = []
    for cid in ready:
        c = engine.containers.get(cid)
        if c is None or c.state != ALLOCATING or c.create_sent or c.host is None:
            continue
        if not journal.is_written(c):
            waiting.append(cid)
            continue
        entry = engine.hosts.get(c.host)
        if entry is None or not entry.registered:
            continue                                 # sent again when the host reports
        c.create_sent = True
        entry.create_queue.append(cid)
        engine.queued_hosts.add(entry.id)
    for host_id in list(engine.queued_hosts):
        entry = engine.hosts.get(host_id)
        if entry is None:
            engine.queued_hosts.discard(host_id)
            continue
        send_creates(engine, entry)
    if engine.safe.on:
        return
    waiting = []
    for cid in engine.destroy_ready:
        c = engine.containers.get(cid)
        if c is None or c.state != DESTROYING or c.destroy_sent or c.host is None:
            continue
        if not journal.is_written(c):
            waiting.append(cid)
            continue
        entry = engine.hosts.get(c.host)
        if entry is None or not entry.registered or entry.status != ALIVE:
            continue                                 # sent again when the host reports
        send_destroy(engine, entry, c)
    engine.destroy_ready = waiting


def send_creates(engine: Engine, entry: HostEntry) -> None:
    """Send the host's queued creates, at most `creates_per_host` in flight: all of them in one
    `container.create_many` request, or one request each to an Agent that does not serve it."""
    limit = engine.settings.creates_per_host
    queue = entry.create_queue
    batch: list[dict[str, Any]] = []
    while queue and entry.creating + len(batch) < limit:
        c = engine.containers.get(queue.popleft())
        if c is None or c.state != ALLOCATING or c.host != entry.id:
            continue
        group = engine.groups.get(c.group)
        if group is None or group.version != c.version:
            c.create_sent = False
            engine.retire(c, "its group or version is gone")
            continue
        try:
            template = opened_template(engine, group.template)
        except GalaxyError as err:  # a sealed secret this ResMan cannot open: a failed create, said why
            entry.creating += 1
            finish_create(engine, entry, c.id, err, None)
            continue
        batch.append({**template, "id": c.id, "group": c.group, "owner": group.owner})
    entry.creating += len(batch)
    if not queue or entry.creating >= limit:
        # Back in the set when an answer makes room (finish_create): a host at its limit is not
        # looked at every round while its creates are out.
        engine.queued_hosts.discard(entry.id)
    if not batch:
        return
    engine.last_create_activity = engine.clock()
    timeout = engine.settings.create_timeout
    if entry.batch_creates and len(batch) > 1:
        ids = [body["id"] for body in batch]
        # The Agent runs a batch's creates one after another: each keeps its own full timeout.
        engine.request(entry.id, AgentMethods.CREATE_MANY, {"containers": batch}, timeout * len(batch),
                       lambda f, at: created_many(engine, entry, ids, f))
        return
    for body in batch:
        engine.request(entry.id, AgentMethods.CREATE, body, timeout,
                       lambda f, at, cid=body["id"]: created(engine, entry, cid, f))


def opened_template(engine: Engine, template: dict[str, Any]) -> dict[str, Any]:
    """The container template as an Agent gets it: env values the AppMaster sealed (the worker key,
    the pod seed: galaxy/coord/_sealed.py) opened with ResMan's state key, for this request only."""
    env = template.get("env")
    if not isinstance(env, dict) or not any(is_sealed(v) for v in env.values()):
        return template
    return {**template, "env": {k: open_sealed(engine.state_key, v, f"env:{k}") for k, v in env.items()}}


def created_many(engine: Engine, entry: HostEntry, ids: list[str], outcome: Outcome) -> None:
    err = outcome.exception()
    if isinstance(err, NotFound) and err.field == "method":
        # An Agent from before `container.create_many`: nothing was created; send them one by one.
        log.info("agent %s does not serve %s: sending single creates", entry.id, AgentMethods.CREATE_MANY)
        entry.batch_creates = False
        entry.creating = max(0, entry.creating - len(ids))
        entry.create_queue.extendleft(reversed(ids))
        engine.queued_hosts.add(entry.id)
        return
    answers: dict[str, dict[str, Any]] = {}
    if err is None:
        body = outcome.result()
        results = body.get("results") if isinstance(body, dict) else None
        for item in results if isinstance(results, list) else ():
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                answers[item["id"]] = item
    for cid in ids:
        item = answers.get(cid)
        if err is not None:
            finish_create(engine, entry, cid, err, None)
        elif item is None:
            finish_create(engine, entry, cid, ProtocolError(f"the Agent's answer does not mention {cid}"), None)
        elif "error" in item:
            finish_create(engine, entry, cid, GalaxyError.from_wire(item["error"]), None)
        else:
            finish_create(engine, entry, cid, None, item.get("container"))


def created(engine: Engine, entry: HostEntry, cid: str, outcome: Outcome) -> None:
    err = outcome.exception()
    finish_create(engine, entry, cid, err, outcome.result() if err is None else None)


def finish_create(engine: Engine, entry: HostEntry, cid: str, err: BaseException | None, body: Any) -> None:
    """One create answered (alone or in a batch): `body` is the Agent's container info, or `err` why not."""
    entry.creating = max(0, entry.creating - 1)
    engine.last_create_activity = engine.clock()
    if entry.create_queue:
        engine.queued_hosts.add(entry.id)
    c = engine.containers.get(cid)
    if c is None or c.host != entry.id or c.state not in (ALLOCATING, RUNNING):
        return
    group = engine.groups.get(c.group)
    if err is None:
        if entry.registered:                            # an answer is a sign of life, like an event
            entry.last_news = engine.clock()
            engine.hosts.heard(entry, entry.last_news)
        engine.stats["created"] += 1
        if c.state == ALLOCATING:          # an older Agent's `container.state` event may have said so first
            c.state = RUNNING
            c.confirmed_at = engine.clock()
        if isinstance(body, dict) and isinstance(body.get("ports"), dict):
            c.ports = dict(body["ports"])
        if group is not None:
            group.failures = 0
            if group.name in engine.rolling:    # a rolling update waits on it; otherwise nothing to redo
                engine.touched.add(group.name)
        return
    if c.state != ALLOCATING:
        return
    engine.stats["create_failed"] += 1
    why = f"creation on {entry.id} failed: {err}"
    log.warning("%s: %s", cid, why)
    if engine.settings.trace_containers:
        engine.trace("container", cid, "create_failed", str(err), host=entry.id)
    if group is not None:
        backoff(engine, group)
        group.avoid[entry.id] = engine.clock() + engine.settings.avoid_for
    engine.unplace(c, why)


def send_destroy(engine: Engine, entry: HostEntry, c: Container) -> None:
    c.destroy_sent = True
    engine.request(entry.id, AgentMethods.DESTROY, {"id": c.id}, engine.settings.destroy_timeout,
                   lambda f, at, cid=c.id: destroyed(engine, cid, f))


def destroyed(engine: Engine, cid: str, outcome: Outcome) -> None:
    c = engine.containers.get(cid)
    if c is None or c.state != DESTROYING:
        return
    c.destroy_sent = False
    if outcome.exception() is None:
        engine.stats["destroyed"] += 1
        engine.forget(c)
