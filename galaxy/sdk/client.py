"""``galaxy.sdk.Client``: everything the ``galaxy`` command can do, as Python calls.

The client finds the AppMaster (jobs, pods) and ResMan (hosts, for administrators) through their
leader records in ZooKeeper, talks to them over the mesh with the user's CURVE key (the key is the
identity; there is no user field), and follows leader changes itself (see ``_leader``). Nothing is
opened until the first call, so building a Client is free and cannot fail on the network::

    with Client() as galaxy:                  # ~/.galaxy/config, or GALAXY_* variables
        galaxy.submit("web.yaml")
        galaxy.wait_job("web")
        print(galaxy.quota())                 # my limits beside what my jobs hold
        for event in galaxy.watch("web", timeout=60):
            print(event.pod, event.previous, "->", event.status)
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from kazoo.client import KazooClient

from galaxy.coord import LeaderInfo, Naming, Paths, connect
from galaxy.errors import InvalidInput, NotFound, Timeout
from galaxy.mesh import Keypair
from galaxy.protocol.appmaster import AppMasterApi as AppMaster
from galaxy.protocol.resman import ResManApi as ResMan
from galaxy.sdk._leader import LeaderLink
from galaxy.sdk._tenancy import TenancyCalls
from galaxy.sdk._watch import WatchEvent, watch_job
from galaxy.sdk.config import ClientConfig, load_config
from galaxy.sdk.errors import JobFailed
from galaxy.spec import JobSpec, load_job_file, parse_job

SpecLike = JobSpec | Mapping[str, Any] | str | os.PathLike[str]
Progress = Callable[[dict[str, Any]], None]

DEADLINE = 30.0          # how long a read keeps trying across leader changes
CALL_TIMEOUT = 10.0      # one attempt at one request
POLL = 0.5               # waits and log follows poll at this interval
SETTLED = ("RUNNING", "COMPLETED", "STOPPED")


class Client(TenancyCalls):
    """A user's (or administrator's) handle on one cluster. Thread-safe; close it (or use ``with``).

    Users, grants, quotas, usage and pools (``whoami``, ``user_create``, ``quota_set``, ``pools``, …)
    come from :class:`galaxy.sdk._tenancy.TenancyCalls`.
    """

    def __init__(self, config: ClientConfig | None = None, *, deadline: float = DEADLINE,
                 call_timeout: float = CALL_TIMEOUT) -> None:
        self.config = config if config is not None else load_config()
        self.paths = Paths(self.config.cluster)
        self._deadline = deadline
        self._call_timeout = call_timeout
        self._lock = threading.Lock()
        self._zk: KazooClient | None = None
        self._keypair: Keypair | None = None
        self._links: dict[str, LeaderLink] = {}
        self._closed = False

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Client:
        """A client for the cluster named by config file ``path`` (default: ``$GALAXY_CONFIG`` / ``~/.galaxy/config``)."""
        return cls(load_config(path), **kwargs)

    # ---- plumbing ---------------------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            links, self._links = list(self._links.values()), {}
            zk, self._zk = self._zk, None
        for link in links:
            link.close()
        if zk is not None:
            zk.stop()
            zk.close()

    def zookeeper(self) -> KazooClient:
        """The client's ZooKeeper session (opened on first use)."""
        with self._lock:
            if self._closed:
                raise InvalidInput("this Client is closed", field="client")
            if self._zk is None:
                if self.config.netns:
                    from galaxy.testing.netns import enter_netns

                    enter_netns(self.config.netns)  # every connection below starts from this thread
                self._zk = connect(self.config.zookeeper, timeout=self.config.timeout, ca=self.config.zookeeper_ca)
            return self._zk

    def _link(self, role: str) -> LeaderLink:
        zk = self.zookeeper()
        with self._lock:
            link = self._links.get(role)
            if link is None:
                if self._keypair is None:
                    self._keypair = Keypair.load(self.config.key)
                link = LeaderLink(zk, self.paths, role, self._keypair, timeout=self._call_timeout,
                                  deadline=self._deadline)
                self._links[role] = link
            return link

    def _read(self, role: str, method: str, body: Any = None, *, timeout: float | None = None) -> Any:
        return self._link(role).call(method, body, write=False, timeout=timeout)

    def _write(self, role: str, method: str, body: Any = None, *, timeout: float | None = None) -> Any:
        return self._link(role).call(method, body, write=True, timeout=timeout)

    def leader(self, role: str = "appmaster", wait: float | None = None) -> LeaderInfo | None:
        """Who leads ``role`` (``appmaster`` or ``resman``) now, as its ZooKeeper record says."""
        return self._link(role).leader(self.config.timeout if wait is None else wait)

    def ping(self, role: str = "appmaster") -> dict[str, Any]:
        """The leader's own ``status`` reply: role, id, cluster, leading_since."""
        reply: dict[str, Any] = self._read(role, AppMaster.STATUS, {})
        return reply

    # ---- jobs ---------------------------------------------------------------------------------------

    def submit(self, spec: SpecLike) -> dict[str, Any]:
        """Create a job from a job file, a parsed JobSpec or its dict; Conflict if it exists."""
        return dict(self._write("appmaster", AppMaster.JOB_SUBMIT, {"spec": spec_dict(spec)}))

    def plan(self, spec: SpecLike) -> dict[str, Any]:
        """What submitting ``spec`` would place, and why not; changes nothing."""
        return dict(self._read("appmaster", AppMaster.JOB_PLAN, {"spec": spec_dict(spec)}))

    def update(self, job: str, spec: SpecLike, *, breakpoint: int | None = None) -> dict[str, Any]:
        """Move ``job`` to a new spec: a rolling update that pauses after ``breakpoint`` pods if given."""
        if breakpoint is not None and (isinstance(breakpoint, bool) or not isinstance(breakpoint, int)
                                       or breakpoint < 1):
            raise InvalidInput(f"must be a whole number >= 1, got {breakpoint!r}", field="breakpoint")
        body = {"job": job, "spec": spec_dict(spec), "breakpoint": breakpoint}
        return dict(self._write("appmaster", AppMaster.JOB_UPDATE, body))

    def pause(self, job: str) -> dict[str, Any]:
        """Hold the rollout of ``job`` where it is."""
        return dict(self._write("appmaster", AppMaster.JOB_PAUSE, {"job": job}))

    def resume(self, job: str) -> dict[str, Any]:
        """Continue a paused rollout."""
        return dict(self._write("appmaster", AppMaster.JOB_RESUME, {"job": job}))

    def rollback(self, job: str) -> dict[str, Any]:
        """Roll ``job`` back to its previous version."""
        return dict(self._write("appmaster", AppMaster.JOB_ROLLBACK, {"job": job}))

    def cancel(self, job: str) -> dict[str, Any]:
        """Stop the rollout where it is (pods already updated stay updated)."""
        return dict(self._write("appmaster", AppMaster.JOB_CANCEL, {"job": job}))

    def scale(self, job: str, replicas: int) -> dict[str, Any]:
        """Set the number of pods of ``job``."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise InvalidInput(f"must be a whole number >= 0, got {replicas!r}", field="replicas")
        return dict(self._write("appmaster", AppMaster.JOB_SCALE, {"job": job, "replicas": replicas}))

    def stop(self, job: str) -> dict[str, Any]:
        """Stop every pod of ``job``; its containers stay until ``remove``."""
        return dict(self._write("appmaster", AppMaster.JOB_STOP, {"job": job}))

    def remove(self, job: str) -> dict[str, Any]:
        """Delete ``job``, its pods and containers."""
        return dict(self._write("appmaster", AppMaster.JOB_REMOVE, {"job": job}))

    def jobs(self, pool: str | None = None) -> list[dict[str, Any]]:
        """Every job (of ``pool``) as a row: job, pool, owner, type, state, version, replicas, running…"""
        return list(self._read("appmaster", AppMaster.JOB_LIST, {} if pool is None else {"pool": pool}))

    def job(self, job: str) -> dict[str, Any]:
        """One job in full: its row plus spec, versions, the rollout in progress and its pods."""
        return dict(self._read("appmaster", AppMaster.JOB_SHOW, {"job": job}))

    def exec(self, job: str, command: str | Sequence[str], *, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Run ``command`` in every pod of ``job``; {pod: {exit_code, stdout, stderr}} (output is bounded)."""
        text = command if isinstance(command, str) else shlex.join(command)
        if not text.strip():
            raise InvalidInput("give a command to run", field="command")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidInput(f"must be a positive number of seconds, got {timeout!r}", field="timeout")
        reply = self._write("appmaster", AppMaster.JOB_EXEC, {"job": job, "command": text, "timeout": float(timeout)},
                            timeout=float(timeout) + self._call_timeout)
        return dict(reply.get("results", {})) if isinstance(reply, dict) else {}

    def job_trace(self, job: str, limit: int = 100) -> list[dict[str, Any]]:
        """The job's recorded lifecycle events, oldest first."""
        return list(self._read("appmaster", AppMaster.JOB_TRACE, {"job": job, "limit": limit}))

    # ---- pods ---------------------------------------------------------------------------------------

    def pods(self, job: str) -> list[dict[str, Any]]:
        """The pods of ``job``: pod, host, address, status, version, restarts, ports, reason…"""
        return list(self._read("appmaster", AppMaster.POD_LIST, {"job": job}))

    def pod(self, pod: str) -> dict[str, Any]:
        """One pod's row plus its history."""
        return dict(self._read("appmaster", AppMaster.POD_SHOW, {"pod": pod}))

    def recover(self, pod: str) -> dict[str, Any]:
        """Try a FAILED pod again."""
        return dict(self._write("appmaster", AppMaster.POD_RECOVER, {"pod": pod}))

    def pod_trace(self, pod: str, limit: int = 100) -> list[dict[str, Any]]:
        """The pod's recorded lifecycle events, oldest first."""
        return list(self._read("appmaster", AppMaster.POD_TRACE, {"pod": pod, "limit": limit}))

    def logs(self, pod: str, *, stream: str = "stdout", tail: int = 100, offset: int | None = None) -> dict[str, Any]:
        """A piece of the pod's stdout or stderr: the last ``tail`` lines, or everything after ``offset``.

        Returns ``{"data": str, "offset": int}``; pass the offset back to read what came after.
        """
        if stream not in ("stdout", "stderr"):
            raise InvalidInput(f"must be stdout or stderr, got {stream!r}", field="stream")
        if isinstance(tail, bool) or not isinstance(tail, int) or tail < 0:
            raise InvalidInput(f"must be a whole number >= 0, got {tail!r}", field="tail")
        body = {"pod": pod, "stream": stream, "tail": tail, "offset": offset}
        return dict(self._read("appmaster", AppMaster.POD_LOGS, body))

    def follow_logs(self, pod: str, *, stream: str = "stdout", tail: int = 10, poll: float = POLL,
                    stop: threading.Event | None = None) -> Iterator[str]:
        """Yield the log's text as it grows, until ``stop`` is set or the pod's container is gone."""
        stop = stop or threading.Event()
        offset: int | None = None
        while not stop.is_set():
            try:
                piece = self.logs(pod, stream=stream, tail=tail, offset=offset)
            except NotFound:
                return
            if piece.get("data"):
                yield str(piece["data"])
            offset = int(piece.get("offset", offset or 0))
            stop.wait(poll)

    # ---- waiting --------------------------------------------------------------------------------------

    def wait_job(self, job: str, *, timeout: float = 600.0, poll: float = POLL,
                 on_progress: Progress | None = None) -> dict[str, Any]:
        """Poll ``job`` until it runs every pod (or completes, stops, or pauses at a breakpoint).

        Returns the last ``job.show`` reply; JobFailed if it goes FAILED; Timeout after ``timeout`` s.
        """
        end = time.monotonic() + timeout
        while True:
            row = self.job(job)
            if on_progress is not None:
                on_progress(row)
            state = row.get("state")
            if state == "FAILED":
                raise JobFailed(f"job {job} failed: {_failure_reason(row)}", job=row)
            if state == "PAUSED" or (state in SETTLED and _all_running(row)):
                return row
            if time.monotonic() >= end:
                raise Timeout(f"job {job} is still {state} after {timeout:g}s "
                              f"({row.get('running', 0)}/{row.get('replicas', 0)} running)", field="timeout")
            time.sleep(poll)

    def wait_drained(self, host: str, *, timeout: float = 600.0, poll: float = POLL,
                     on_progress: Progress | None = None) -> dict[str, Any]:
        """Poll ``host`` until no container is left on it; returns its last row."""
        end = time.monotonic() + timeout
        while True:
            row = self.host(host)
            if on_progress is not None:
                on_progress(row)
            if int(row.get("containers", 0)) == 0:
                return row
            if time.monotonic() >= end:
                raise Timeout(f"host {host} still holds {row.get('containers')} containers after {timeout:g}s",
                              field="timeout")
            time.sleep(poll)

    # ---- naming (straight from ZooKeeper: no AppMaster needed) --------------------------------------

    def resolve(self, job: str) -> dict[str, dict[str, Any]]:
        """{pod: {"pod","job","host","address","ports","status","version","updated_at"}} of ``job``."""
        return Naming(self.zookeeper(), self.paths).resolve(job)

    def watch(self, job: str, *, timeout: float | None = None,
              stop: threading.Event | None = None) -> Iterator[WatchEvent]:
        """Yield a WatchEvent whenever a pod of ``job`` appears, changes status or version, or goes.

        The pods present when the watch starts come first (``previous`` None). Ends after ``timeout``
        seconds, when ``stop`` is set, or when the caller stops iterating.
        """
        return watch_job(Naming(self.zookeeper(), self.paths), job, timeout=timeout, stop=stop)

    # ---- hosts (ResMan; administrators) ---------------------------------------------------------------

    def hosts(self, pool: str | None = None) -> list[dict[str, Any]]:
        """Every host (of ``pool``): id, pool, labels, status, admin, capacity, free, containers."""
        return list(self._read("resman", ResMan.HOSTS_LIST, {} if pool is None else {"pool": pool}))

    def host(self, host: str) -> dict[str, Any]:
        """One host's row; NotFound if ResMan does not know it."""
        for row in self.hosts():
            if row.get("id") == host:
                return dict(row)
        raise NotFound(f"no host {host!r}", field="host")

    def host_trace(self, host: str, limit: int = 100) -> list[dict[str, Any]]:
        """The host's recorded events (lost, drained, …), from ResMan (``trace/`` in ZooKeeper is
        readable by the daemons only)."""
        return list(self._read("resman", ResMan.HOST_TRACE, {"host": host, "limit": limit}))

    def offline(self, host: str) -> dict[str, Any]:
        """No new containers on ``host``; the running ones stay."""
        return dict(self._write("resman", ResMan.HOST_OFFLINE, {"host": host}))

    def online(self, host: str) -> dict[str, Any]:
        """Let ``host`` take containers again."""
        return dict(self._write("resman", ResMan.HOST_ONLINE, {"host": host}))

    def drain(self, host: str) -> dict[str, Any]:
        """Move every container off ``host`` (see ``wait_drained``)."""
        return dict(self._write("resman", ResMan.HOST_DRAIN, {"host": host}))

    def label(self, host: str | Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
        """Add labels to ``host`` — or to every host of a list, all or none (one answer per host)."""
        return dict(self._write("resman", ResMan.HOST_LABEL, {**_hosts(host), "labels": _labels(labels)}))

    def unlabel(self, host: str | Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
        """Take labels off ``host`` (or off every host of a list, all or none)."""
        return dict(self._write("resman", ResMan.HOST_UNLABEL, {**_hosts(host), "labels": _labels(labels)}))

    def move(self, host: str, pool: str) -> dict[str, Any]:
        """Put ``host`` into ``pool``."""
        return dict(self._write("resman", ResMan.HOST_MOVE, {"host": host, "pool": pool}))

    def status(self) -> dict[str, Any]:
        """The cluster at a glance: hosts, capacity, use and jobs by state, in total and per pool."""
        from galaxy.sdk._summary import summarize

        return summarize(self.config.cluster, self.hosts(), self.jobs(),
                         {role: self.leader(role, 0.0) for role in ("resman", "appmaster")})


def spec_dict(spec: SpecLike) -> dict[str, Any]:
    """The normalised dict of a job, validated here first so a bad file fails before any network call."""
    if isinstance(spec, JobSpec):
        return spec.to_dict()
    if isinstance(spec, Mapping):
        return parse_job(dict(spec)).to_dict()
    if isinstance(spec, str | os.PathLike):
        return load_job_file(spec).to_dict()
    raise InvalidInput(f"expected a JobSpec, a dict or a job file path, got {type(spec).__name__}", field="spec")


def _hosts(host: str | Sequence[str]) -> dict[str, Any]:
    """One host as ``{"host"}`` (answered as before), several as ``{"hosts"}`` (one answer each)."""
    if isinstance(host, str):
        names = [h for h in host.split(",") if h] if "," in host else [host]
    else:
        names = list(host)
    if not names or not all(isinstance(h, str) and h for h in names):
        raise InvalidInput("give one or more host ids", field="host")
    return {"host": names[0]} if len(names) == 1 and isinstance(host, str) else {"hosts": names}


def _labels(labels: Sequence[str]) -> list[str]:
    found = [labels] if isinstance(labels, str) else list(labels)
    if not found or not all(isinstance(label, str) and label for label in found):
        raise InvalidInput("give one or more labels", field="labels")
    return found


def _all_running(row: dict[str, Any]) -> bool:
    if row.get("state") in ("COMPLETED", "STOPPED"):
        return True
    return int(row.get("running", 0)) >= int(row.get("replicas", 0))


def _failure_reason(row: dict[str, Any]) -> str:
    reasons = [f"{pod.get('pod')}: {pod.get('reason')}" for pod in row.get("pods", []) or []
               if isinstance(pod, dict) and pod.get("reason")]
    return "; ".join(reasons[:3]) or f"{row.get('failed', 0)} pods failed"


__all__ = ["Client", "spec_dict"]
