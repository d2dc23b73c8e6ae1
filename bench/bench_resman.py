"""ResMan at scale: 100 containers per group, GALAXY_BENCH_RESMAN_GROUPS groups (default 100) over
GALAXY_BENCH_RESMAN_HOSTS simulated hosts (default 1,000), persisted to a real ZooKeeper, created on the
simulated Agents over the real mesh (CURVE). The issue's full scale is
`GALAXY_BENCH_RESMAN_HOSTS=10000 GALAXY_BENCH_RESMAN_GROUPS=1000` (see docs/resman-scale.md for what it
gives on this shared 2-core machine); the default keeps the run well under a minute.

ResMan (engine, mesh server, ZooKeeper client) runs in this process; the simulated fleet runs in
GALAXY_BENCH_RESMAN_FLEET_PROCESSES child processes (default 2, `galaxy.testing.fleetproc`), so the
CPU figures are ResMan's own. GALAXY_BENCH_RESMAN_PROFILE=<path> writes a cProfile of the engine loop (thread CPU time).

Rows:
* placements per second end to end (group created → placement written → Agent answered create),
  against Nomad's published 2-million-container run (~1,500 placements/s); target 10,000/s;
* the same once the groups exist: a second load whose groups are created while ResMan is held in
  safe mode, then released (the placement pipeline without the one-at-a-time group.create calls);
* time for the group.create calls, until all 100,000 are placed (written) and running (created);
* scheduler CPU per placement (the pipeline alone, same 10,000 hosts and groups) against a first-fit
  scan without indexes or cursor (what the original Galaxy did), measured in the same run;
* 10,000 hosts polled once a second: poll rate and p99 answer latency, while idle after placing;
* utilisation reached by bin-pack beside spread on the same workload (hosts used, mean utilisation);
* the end-to-end load against ZooKeeper as a cluster runs it (daemons' digest credential, an ACL on
  every znode, TLS on the client port) and against an open, plain ZooKeeper, in
  GALAXY_BENCH_RESMAN_ACL_ROUNDS alternating pairs (default 3; this shared machine's load moves the
  figures by 2× between minutes, so one pair proves nothing) after one uncounted run on each server
  (a warm JVM, as a cluster's is); the ratio rows compare the medians (target: within 10 %), the
  rows above are the secured runs' medians.
"""

from __future__ import annotations

import cProfile
import dataclasses
import gc
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench._table import Row
from galaxy.coord import ClusterCA, Credential, Election, Leadership, Paths, StateStore, connect
from galaxy.coord._tls import write_server_tls
from galaxy.mesh import Keypair, KeyRing, Server
from galaxy.resman import Engine, ResManSettings, serve
from galaxy.resman.engine import GC_THRESHOLDS
from galaxy.resman.groups import GroupApi
from galaxy.resman.scheduler import Ask, GroupAsk, HostIndex, HostView, Scheduler, first_rejection
from galaxy.tenancy import Directory
from galaxy.testing import ZooKeeperServer
from galaxy.testing.fleetproc import FleetProcess, start_fleets
from galaxy.testing.zk import delete_tree

HOSTS = int(os.environ.get("GALAXY_BENCH_RESMAN_HOSTS", "1000"))
GROUPS = int(os.environ.get("GALAXY_BENCH_RESMAN_GROUPS", "100"))
PER_GROUP = 100
CREATE_CALLS = 4       # group.create calls in flight, as the daemon's 4 blocking mesh workers serve them
FLEET_PROCESSES = int(os.environ.get("GALAXY_BENCH_RESMAN_FLEET_PROCESSES", "2"))
ACL_ROUNDS = int(os.environ.get("GALAXY_BENCH_RESMAN_ACL_ROUNDS", "3"))
PROFILE = os.environ.get("GALAXY_BENCH_RESMAN_PROFILE", "")     # a path: cProfile the engine loop into it
NOMAD_PLACEMENTS_PER_S = 1_500.0
GiB = 1 << 30


def _create_groups(api: GroupApi, prefix: str) -> None:
    """The groups arrive as group.create calls would from the AppMaster: CREATE_CALLS in flight at
    once (the ResMan daemon serves blocking calls on 4 mesh workers), each answered once persisted."""
    with ThreadPoolExecutor(CREATE_CALLS) as pool:
        list(pool.map(lambda i: api.create({"group": f"{prefix}{i:04d}", "owner": "bench", "replicas": PER_GROUP,
                                            "container": _template(i)}), range(GROUPS)))


def _template(i: int) -> dict[str, Any]:
    cpu = (0.25, 0.5, 1.0, 2.0)[i % 4]
    return {"cpu": cpu, "memory": int(cpu * 2 * GiB), "user": "nobody", "argv": ["/bin/app"],
            "ports": [{"name": "http"}]}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run() -> list[Row]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = _scheduler_rows() + _utilisation_rows()
    secured_runs: list[list[Row]] = []
    open_runs: list[list[Row]] = []
    credential = Credential.generate()
    with tempfile.TemporaryDirectory(prefix="galaxy-bench-zk-tls-") as tls_dir:
        write_server_tls(tls_dir, ClusterCA.generate("bench"), ["127.0.0.1"])
        with ZooKeeperServer(tick_ms=500) as plain, ZooKeeperServer(tick_ms=500, tls_dir=tls_dir) as secure:
            # A cluster's ZooKeeper is warm: one run each, not counted, so neither JVM is measured cold
            # (a cold server's first run was up to 2.5x slower than its next one here).
            _end_to_end_rows(plain.hosts, prefix="warm")
            _end_to_end_rows(secure.hosts, credential=credential, ca=secure.ca, prefix="warm")
            for round_ in range(ACL_ROUNDS):
                # Alternate which goes first, so a drift in the machine's load falls on both alike.
                for secured in ((True, False) if round_ % 2 else (False, True)):
                    if secured:
                        secured_runs.append(_end_to_end_rows(secure.hosts, credential=credential, ca=secure.ca,
                                                             prefix=f"r{round_}"))
                    else:
                        open_runs.append(_end_to_end_rows(plain.hosts, prefix=f"r{round_}"))
    medians = _medians(secured_runs)
    return medians + _secured_against_open(medians, _medians(open_runs)) + rows


def _medians(runs: list[list[Row]]) -> list[Row]:
    """Each row's median value over ``runs`` (same rows in the same order)."""
    return [dataclasses.replace(row, value=statistics.median(run[i].value for run in runs))
            for i, row in enumerate(runs[0])]


def _secured_against_open(secured: list[Row], open_rows: list[Row]) -> list[Row]:
    """What authentication, ACLs and TLS cost ResMan's writes: the same load against an open plain
    ZooKeeper, measured in this run (medians of alternating runs)."""
    plain = {r.metric: r.value for r in open_rows}
    rate, placed = secured[0], next(r for r in secured if r.metric.startswith("time until all placed"))
    return [
        Row("resman", f"placements/s end to end, ZooKeeper with credential + ACLs + TLS (median of {ACL_ROUNDS})",
            rate.value, "/s", plain[rate.metric], "same load, open plain ZooKeeper", 0.90),
        Row("resman", f"time until all placed, ZooKeeper with credential + ACLs + TLS (median of {ACL_ROUNDS})",
            placed.value, "s", plain[placed.metric], "same load, open plain ZooKeeper", 1.10, better="lower"),
    ]


# ---- end to end ----------------------------------------------------------------------------------

def _end_to_end_rows(zk_hosts: str, *, credential: Credential | None = None, ca: str | None = None,
                     prefix: str = "") -> list[Row]:
    # 30 s: at full scale the ZooKeeper client's thread shares the GIL with a saturated loop and mesh;
    # with 10 s its session expired mid-run and the leader (rightly) stepped down.
    zk = connect(zk_hosts, session_timeout=30.0, credential=credential, ca=ca)
    paths = Paths(f"bench{prefix}")   # each run its own tree: no run reads another's state
    elected = threading.Event()
    holder: list[Leadership] = []

    def lead(leadership: Leadership) -> None:
        holder.append(leadership)
        elected.set()
        leadership.lost.wait()
    election = Election(zk, paths, "resman", "bench")
    election.start(lead)
    elected.wait(20)
    server_keys, agent_keys = Keypair.generate(), Keypair.generate()
    ring = KeyRing()
    ring.add(agent_keys.public, "agent")
    # Generous liveness (30 s mesh, 60 s ResMan): this measures throughput on a shared 2-core machine, where a
    # starved process can miss heartbeats for seconds; failure detection has its own tests.
    server = Server("tcp://127.0.0.1:0", server_keys, ring, heartbeat_interval=1.0, liveness=30, name="resman-bench")
    settings = ResManSettings(poll_interval=1.0, lost_after=60, trace_containers=False)
    engine = Engine(settings, server=server, store=StateStore(zk, paths, leadership=holder[0]))
    directory = Directory(zk, paths, ring).start()      # who each key is (users, pools), as the daemon has it
    if not directory.wait_synced(20):
        raise RuntimeError("the Directory never read ZooKeeper")
    serve(engine, server, directory)
    server.start()
    profiler = _start_engine(engine)
    fleets: list[FleetProcess] = []
    try:
        started = time.monotonic()
        fleets = start_fleets(server.endpoint, server_keys.public, agent_keys, HOSTS, processes=FLEET_PROCESSES,
                              cpu=32.0, memory=128 * GiB, threads=2, heartbeat_interval=1.0)
        _wait(lambda: engine.reported_count() >= HOSTS, 120, "hosts registered", engine, fleets)
        registered_s = time.monotonic() - started
        api = GroupApi(engine)
        started = time.monotonic()
        cpu0 = time.process_time()
        fleet_cpu0 = sum(f.stats()["cpu_s"] for f in fleets)
        _create_groups(api, "g")
        groups_s = time.monotonic() - started
        _wait(lambda: engine.stats["placed"] >= GROUPS * PER_GROUP and not engine.journal.dirty
              and not engine.journal.inflight, 300, "all placed",
              engine, fleets)
        placed_s = time.monotonic() - started
        _wait(lambda: engine.stats["created"] >= GROUPS * PER_GROUP, 300, "all created", engine, fleets)
        running_s = time.monotonic() - started
        cpu_s = time.process_time() - cpu0
        fleet_cpu_s = sum(f.stats()["cpu_s"] for f in fleets) - fleet_cpu0
        # Idle means after the burst: polls give way to creates while they last (hosts.due_polls), so the
        # steady state starts two poll intervals after the last create answer.
        _wait(lambda: engine.clock() - engine.last_create_activity > 2 * settings.poll_interval, 30, "quiet")
        # ... and the polls back in their rhythm: after the burst every host is due at once, and the
        # catch-up pace (hosts.POLL_CATCH_UP) needs a few intervals to spread them over the interval again.
        time.sleep(4 * settings.poll_interval)
        engine.poll_latencies.clear()
        polls0, t0 = _polls(engine), time.monotonic()
        time.sleep(5.0)
        poll_rate = (_polls(engine) - polls0) / (time.monotonic() - t0)
        latencies = list(engine.poll_latencies)
        total = GROUPS * PER_GROUP
        rate = total / running_s
        # The same load again, its groups created while ResMan holds still (safe mode): what the placement
        # pipeline does once the groups exist (a scale-up, a failover), without the group.create calls.
        with engine.lock:
            engine.safe.enter("bench: groups first, placements after")
        _create_groups(api, "h")
        created0 = engine.stats["created"]
        started = time.monotonic()
        with engine.lock:
            engine.safe.leave()
        engine.wake()
        _wait(lambda: engine.stats["created"] >= created0 + total, 300, "second load created", engine, fleets)
        pipeline_rate = total / (time.monotonic() - started)
        return [
            Row("resman", f"placements/s end to end ({total:,} in {GROUPS:,} groups, {HOSTS:,} hosts)", rate, "/s",
                NOMAD_PLACEMENTS_PER_S, "nomad published", 10_000 / NOMAD_PLACEMENTS_PER_S),
            Row("resman", "placements/s once the groups exist (same load, groups created in safe mode first)",
                pipeline_rate, "/s", NOMAD_PLACEMENTS_PER_S, "nomad published", 10_000 / NOMAD_PLACEMENTS_PER_S),
            Row("resman", f"time for the {GROUPS:,} group.create calls ({CREATE_CALLS} in flight, each persisted before it answers)", groups_s,
                "s"),
            Row("resman", "time until all placed (written to ZooKeeper)", placed_s, "s"),
            Row("resman", "time until all running (created on Agents)", running_s, "s"),
            Row("resman", "ResMan process CPU per placement, end to end (engine + mesh + ZooKeeper client)",
                cpu_s / total * 1e6, "us", fleet_cpu_s / total * 1e6, "simulated fleet's CPU", better="lower"),
            Row("resman", f"{HOSTS:,} simulated hosts registered (CURVE connect + register)", registered_s, "s"),
            Row("resman", f"hosts polled per second ({HOSTS:,} hosts, 1 s interval)", poll_rate, "/s", float(HOSTS),
                "hosts", 0.95),
            Row("resman", "poll answer latency p50", _percentile(latencies, 0.5) * 1000, "ms", better="lower"),
            Row("resman", "poll answer latency p99", _percentile(latencies, 0.99) * 1000, "ms", 1000.0,
                "poll interval", 0.5, better="lower"),
        ]
    finally:
        for fleet in fleets:
            fleet.close()
        engine.stop()
        if profiler is not None:
            profiler.dump_stats(PROFILE)
        server.stop()
        directory.close()
        election.stop()
        delete_tree(zk, paths.root)   # the next run's server keeps its heap for its own tree
        zk.stop()
        zk.close()


def _start_engine(engine: Engine) -> cProfile.Profile | None:
    """Start the engine; with GALAXY_BENCH_RESMAN_PROFILE set, under cProfile (its loop thread is ResMan's work)."""
    if not PROFILE:
        engine.start()
        return None
    # Thread CPU time, not wall time: with the GIL shared by the mesh and ZooKeeper threads, a wall-clock
    # profile charges whichever function held the GIL before a hand-off with the other threads' work.
    profiler = cProfile.Profile(time.thread_time)
    gc.set_threshold(*GC_THRESHOLDS)        # as Engine.start does
    engine.start_writer()
    engine._thread = threading.Thread(target=profiler.runcall, args=(engine._run,), name="resman-loop", daemon=True)
    engine._thread.start()
    return profiler


def _polls(engine: Engine) -> int:
    return engine.stats["polls"]


def _fleet_note(fleets: list[FleetProcess]) -> str:
    totals: dict[str, float] = {}
    for fleet in fleets:
        for key, value in fleet.stats().items():
            totals[key] = totals.get(key, 0) + value
    return (f"fleet: registered {int(totals.get('registered_hosts', 0)):,} containers "
            f"{int(totals.get('containers', 0)):,} unchanged polls {int(totals.get('polls_unchanged', 0)):,} dropped sends {int(totals.get('send_dropped', 0)):,} "
            f"cpu {totals.get('cpu_s', 0.0):.0f} s")


def _wait(predicate: Any, timeout: float, what: str, engine: Engine | None = None,
          fleets: list[FleetProcess] | None = None) -> None:
    """Poll `predicate`; with `engine`, note its progress on stderr every 10 s (the full scale takes minutes)."""
    started = time.monotonic()
    deadline, note = started + timeout, started + 10
    while not predicate():
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        if engine is not None and now > note:
            note = now + 10
            s = engine.stats
            in_flight = sum(e.creating for e in list(engine.hosts.entries.values()))
            print(f"  {now - started:5.0f} s waiting for {what}: placed {s['placed']:,} created {s['created']:,} "
                  f"lost hosts {s['lost_hosts']:,} polls {s['polls']:,} creates in flight {in_flight:,} "
                  f"hosts with creates queued {len(engine.queued_hosts):,} inbox {len(engine._inbox):,}"
                  + (f"; {_fleet_note(fleets)}" if fleets else ""), file=sys.stderr, flush=True)
        time.sleep(0.05)


# ---- the scheduler alone -------------------------------------------------------------------------

def _views(count: int, cpu: float = 32.0) -> list[HostView]:
    views = []
    for i in range(count):
        v = HostView(f"h{i:05d}")
        v.set_capacity({"cpu": cpu, "memory": 128 * GiB}, [])
        v.report({"cpu": cpu, "memory": 128 * GiB, "disks": {}, "ports": 1000}, set(), set())
        v.alive = True
        views.append(v)
    return views


def _asks() -> list[GroupAsk]:
    return [GroupAsk(f"g{i:04d}", "default", Ask.of(_template(i))) for i in range(GROUPS)]


def _first_fit(views: list[HostView], want: GroupAsk, ids: list[str]) -> int:
    """The original's way: scan every host from the start for the first that fits."""
    placed = 0
    for cid in ids:
        for view in views:
            if first_rejection(view, want) is None:
                view.debit(cid, want.group, want.ask)
                placed += 1
                break
    return placed


def _scheduler_rows() -> list[Row]:
    index = HostIndex()
    for v in _views(HOSTS):
        index.add(v)
    sched = Scheduler(index, "binpack")
    started = time.thread_time()
    placed = 0
    for want in _asks():
        placed += len(sched.place(want, [f"{want.group}.{j}" for j in range(PER_GROUP)]).placed)
    ours = (time.thread_time() - started) / placed * 1e6
    sample = GROUPS // 10               # first-fit slows as hosts fill: a tenth of the groups is enough
    baseline_views = _views(HOSTS)
    started = time.thread_time()
    base_placed = sum(_first_fit(baseline_views, want, [f"{want.group}.{j}" for j in range(PER_GROUP)])
                      for want in _asks()[:sample])
    theirs = (time.thread_time() - started) / base_placed * 1e6
    return [Row("resman", "scheduler CPU per placement (pipeline alone, same groups and hosts)", ours, "us", theirs,
                "first-fit scan", 0.5, better="lower")]


def _utilisation_rows() -> list[Row]:
    rng = random.Random(7)
    hosts, groups = 1_000, 300
    sizes = [(rng.choice((0.5, 1.0, 2.0, 4.0)), rng.randint(5, 40)) for _ in range(groups)]
    results: dict[str, tuple[int, float]] = {}
    for strategy in ("binpack", "spread"):
        index = HostIndex()
        views = _views(hosts, cpu=16.0)
        for v in views:
            index.add(v)
        sched = Scheduler(index, strategy, seed=3)
        for i, (cpu, count) in enumerate(sizes):
            ask = Ask(cpu, int(cpu * 4 * GiB))
            sched.place(GroupAsk(f"g{i}", "default", ask), [f"g{i}.{j}" for j in range(count)])
        used = [v for v in views if v.containers]
        results[strategy] = (len(used), sum(v.utilisation() for v in used) / max(1, len(used)))
    (bp_used, bp_util), (sp_used, sp_util) = results["binpack"], results["spread"]
    return [
        Row("resman", "mean utilisation of used hosts, bin-pack (same workload)", bp_util * 100, "%", sp_util * 100,
            "spread", 1.0),
        Row("resman", "hosts needed for the workload, bin-pack", float(bp_used), "hosts", float(sp_used), "spread",
            1.0, better="lower"),
    ]
