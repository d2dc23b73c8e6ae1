"""`AppMasterService`: the AppMaster role plugged into the replicated-leader loop, and its routes.

On taking over it rebuilds the master from `state/`, re-admits every job's worker key, follows the
ResMan leader and registers the user API (galaxy.protocol.appmaster) and the workers' pull protocol
(galaxy.protocol.pod) and the tenancy API (galaxy.protocol.tenancy). Every user route first resolves
the caller from the key that connected and checks its authority (galaxy.appmaster.authority): reads
need job.read on the job's pool, changes need the verb's permission there and ownership. On demotion every thread stops and every worker key leaves the KeyRing.
Workers are never restarted by a failover: they keep running and report to whoever leads next.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from galaxy.appmaster.authority import caller, check_read, readable
from galaxy.appmaster.master import Master
from galaxy.appmaster.operations import Operations
from galaxy.appmaster.resman_link import ResManLink
from galaxy.appmaster.tenancy_api import TenancyRoutes
from galaxy.appmaster.views import job_detail, job_row, plan
from galaxy.coord import Leadership, Paths, StateStore
from galaxy.daemon.config import DaemonConfig
from galaxy.daemon.replica import RoleService
from galaxy.errors import InternalError, InvalidInput, NotFound, NotLeader
from galaxy.mesh import Keypair, Request, Server
from galaxy.protocol.appmaster import (
    LOG_STREAMS,
    MAX_EXEC_COMMAND,
    MAX_EXEC_TIMEOUT,
    MAX_TRACE,
    AppMasterApi,
    want_int,
    want_opt_str,
    want_seconds,
    want_spec,
    want_str,
)
from galaxy.protocol.pod import EXEC_RESULT, REPORT
from galaxy.spec import MAX_REPLICAS, parse_job
from galaxy.tenancy import JOB_READ, JOB_UPDATE, Principal, check_pool_name, require
from galaxy.trace import read_trace

log = logging.getLogger(__name__)


class AppMasterService(RoleService):
    def __init__(self, config: DaemonConfig, *, keypair: Keypair | None = None,
                 worker_argv: list[str] | None = None) -> None:
        super().__init__(config)
        self.keypair = keypair or Keypair.load(config.key)
        self.worker_argv = worker_argv
        self.master: Master | None = None
        self.ops: Operations | None = None
        self._link: ResManLink | None = None
        self._zk: KazooClient | None = None
        self._paths = Paths(config.cluster)

    # ---- RoleService ------------------------------------------------------------------------------
    def on_leading(self, leadership: Leadership, server: Server, zk: KazooClient) -> None:
        self._zk = zk
        store = StateStore(zk, self._paths, leadership=leadership)
        self._link = ResManLink(zk, self._paths, self.keypair, f"appmaster-{self.config.id}",
                                heartbeat_interval=self.config.heartbeat_interval)
        master = Master(zk=zk, paths=self._paths, store=store, keyring=server.keyring, resman=self._link,
                        zookeeper_hosts=self.config.zookeeper, worker_argv=self.worker_argv,
                        state_key=self.config.sealing_key(),
                        zookeeper_ca_pem=Path(self.config.zookeeper_ca).read_text() if self.config.zookeeper_ca else "")
        if self.directory is None:
            raise InternalError("the AppMaster leads without a user directory (ReplicatedDaemon sets it)")
        master.load()
        self.master, self.ops = master, Operations(master, self.directory)
        self._routes(server)
        TenancyRoutes(master, self.directory).register(server)
        master.start()

    def status(self) -> dict[str, Any]:
        """Calls refused for speaking for a pod not the caller's own (PodIdentities), this term."""
        master = self.master
        return {"pod_identity_refused": master.identities.refused if master is not None else 0}

    def on_demoted(self) -> None:
        master, link = self.master, self._link
        self.master, self.ops, self._link = None, None, None
        if master is not None:
            master.close()
        if link is not None:
            link.close()

    # ---- routing ----------------------------------------------------------------------------------
    def _routes(self, server: Server) -> None:
        master = self.master
        assert master is not None
        server.route(REPORT, master.handle_report)                    # memory only: the I/O thread
        server.route(EXEC_RESULT, master.handle_exec_result)
        server.on_event(EXEC_RESULT, master.handle_exec_result)
        api = AppMasterApi
        blocking = {api.JOB_SUBMIT: self._submit, api.JOB_UPDATE: self._update, api.JOB_PAUSE: self._pause,
                    api.JOB_RESUME: self._resume, api.JOB_ROLLBACK: self._rollback, api.JOB_CANCEL: self._cancel,
                    api.JOB_SCALE: self._scale, api.JOB_STOP: self._stop, api.JOB_REMOVE: self._remove,
                    api.JOB_EXEC: self._exec, api.JOB_PLAN: self._plan, api.JOB_TRACE: self._job_trace,
                    api.POD_SHOW: self._pod_show, api.POD_RECOVER: self._recover, api.POD_TRACE: self._pod_trace,
                    api.POD_LOGS: self._pod_logs}
        for method, fn in blocking.items():
            server.route(method, fn, blocking=True)
        quick = {api.JOB_LIST: self._list, api.JOB_SHOW: self._show, api.POD_LIST: self._pod_list}
        for method, fn in quick.items():
            server.route(method, fn)

    def _m(self) -> tuple[Master, Operations]:
        master, ops = self.master, self.ops
        if master is None or ops is None:
            raise NotLeader("this AppMaster no longer leads")
        return master, ops

    def _who(self, req: Request) -> Principal:
        return caller(self.directory, req)

    # ---- changes ----------------------------------------------------------------------------------
    def _submit(self, req: Request) -> Any:
        who = self._who(req)
        return self._m()[1].submit(who, want_spec(req.body))

    def _update(self, req: Request) -> Any:
        who = self._who(req)
        body = req.body
        name = want_str(body, "job")
        bp = body.get("breakpoint")
        if bp is not None and (isinstance(bp, bool) or not isinstance(bp, int) or bp < 1):
            raise InvalidInput("expected a positive number of pods or null", field="breakpoint")
        return self._m()[1].update(who, name, want_spec(body), bp)

    def _pause(self, req: Request) -> Any:
        return self._m()[1].pause(self._who(req), want_str(req.body, "job"))

    def _resume(self, req: Request) -> Any:
        return self._m()[1].resume(self._who(req), want_str(req.body, "job"))

    def _rollback(self, req: Request) -> Any:
        return self._m()[1].rollback(self._who(req), want_str(req.body, "job"))

    def _cancel(self, req: Request) -> Any:
        return self._m()[1].cancel(self._who(req), want_str(req.body, "job"))

    def _scale(self, req: Request) -> Any:
        who = self._who(req)
        name = want_str(req.body, "job")
        return self._m()[1].scale(who, name, want_int(req.body, "replicas", low=0, high=MAX_REPLICAS))

    def _stop(self, req: Request) -> Any:
        return self._m()[1].stop(self._who(req), want_str(req.body, "job"))

    def _remove(self, req: Request) -> Any:
        return self._m()[1].remove(self._who(req), want_str(req.body, "job"))

    def _recover(self, req: Request) -> Any:
        return self._m()[1].recover(self._who(req), want_str(req.body, "pod"))

    def _exec(self, req: Request) -> Any:
        who = self._who(req)
        name = want_str(req.body, "job")
        command = want_str(req.body, "command")
        if len(command) > MAX_EXEC_COMMAND:
            raise InvalidInput(f"longer than {MAX_EXEC_COMMAND} characters", field="command")
        timeout = want_seconds(req.body, "timeout", default=10.0, high=MAX_EXEC_TIMEOUT)
        master, ops = self._m()
        with master.lock:
            ops.mutable(who, name, JOB_UPDATE)
        return {"results": master.exec_in_pods(name, command, timeout)}

    # ---- reads ------------------------------------------------------------------------------------
    def _plan(self, req: Request) -> Any:
        who = self._who(req)
        spec = parse_job(want_spec(req.body))
        require(who, JOB_READ, spec.pool)
        master = self._m()[0]
        hosts = master.resman.call("hosts.list", {"pool": spec.pool}, deadline=10.0)
        return plan(spec, hosts if isinstance(hosts, list) else [])

    def _list(self, req: Request) -> Any:
        """Jobs in the pools where the caller holds job.read (every pool for an administrator)."""
        who = self._who(req)
        pool = want_opt_str(req.body or {}, "pool")
        if pool is not None:
            require(who, JOB_READ, check_pool_name(pool))
        master = self._m()[0]
        with master.lock:
            return [job_row(job, master.job_pods(name)) for name, job in sorted(master.jobs.items())
                    if not job.removing and (pool is None or job.pool == pool) and readable(who, job.pool)]

    def _show(self, req: Request) -> Any:
        who = self._who(req)
        master = self._m()[0]
        with master.lock:
            job = master.job(want_str(req.body, "job"))
            check_read(who, job)
            return job_detail(job, master.job_pods(job.name))

    def _pod_list(self, req: Request) -> Any:
        who = self._who(req)
        master = self._m()[0]
        with master.lock:
            name = want_str(req.body, "job")
            check_read(who, master.job(name))
            return [p.row() for p in master.job_pods(name)]

    def _readable_pod(self, who: Principal, pod: str) -> Any:
        master = self._m()[0]
        with master.lock:
            row = master.pod(pod)
            check_read(who, master.job(row.job))
            return row.row()

    def _pod_show(self, req: Request) -> Any:
        who = self._who(req)
        row = self._readable_pod(who, want_str(req.body, "pod"))
        master = self._m()[0]
        return {**row, "history": read_trace(master.zk, master.paths, "pod", row["pod"], MAX_TRACE)}

    def _limit(self, req: Request) -> int:
        return want_int(req.body, "limit", low=1, high=MAX_TRACE, default=MAX_TRACE)

    def _job_trace(self, req: Request) -> Any:
        """A live job's trace needs job.read on its pool; a removed job's trace is for administrators."""
        who = self._who(req)
        master = self._m()[0]
        name = want_str(req.body, "job")
        with master.lock:
            job = master.jobs.get(name)
            if job is not None:
                check_read(who, job)
            elif not who.is_admin:
                raise NotFound(f"no job {name!r}", field="job")
        return read_trace(master.zk, master.paths, "job", name, self._limit(req))

    def _pod_trace(self, req: Request) -> Any:
        who = self._who(req)
        master = self._m()[0]
        pod = want_str(req.body, "pod")
        with master.lock:
            row = master.pods.get(pod)
            job = master.jobs.get(row.job) if row is not None else None
            if job is not None:
                check_read(who, job)
            elif not who.is_admin:
                raise NotFound(f"no pod {pod!r}", field="pod")
        return read_trace(master.zk, master.paths, "pod", pod, self._limit(req))

    def _pod_logs(self, req: Request) -> Any:
        who = self._who(req)
        body = req.body
        pod = want_str(body, "pod")
        stream = body.get("stream", "stdout")
        if stream not in LOG_STREAMS:
            raise InvalidInput(f"expected one of {', '.join(LOG_STREAMS)}", field="stream")
        tail = want_int(body, "tail", low=0, high=1 << 24, default=64 * 1024)
        offset = body.get("offset")
        if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
            raise InvalidInput("expected a byte offset >= 0 or null", field="offset")
        self._readable_pod(who, pod)
        master = self._m()[0]
        return master.resman.call("container.logs", {"container": pod, "stream": stream, "tail": tail,
                                                     "offset": offset}, deadline=10.0)
