"""A test AppMaster and ResMan: real ``galaxy.mesh.Server``s found through real ZooKeeper leader records,
answering the contract's methods from a small in-memory model.

Only the service behind the API is canned; the user's key, CURVE, the mesh, the leader record and
ZooKeeper are the real thing, so the SDK and CLI run exactly as they would against a cluster.
Every call is recorded with the key name it arrived under, so tests can check what was sent and as whom.
The multi-tenancy methods (users, quotas, pools) are in ``canned_tenancy``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from galaxy.coord import LeaderInfo, Paths, connect, publish_leader
from galaxy.errors import Conflict, InvalidInput, NotFound
from galaxy.mesh import Keypair, KeyRing, Request, Server
from galaxy.spec import parse_job
from tests.sdk.canned_tenancy import TenancyState

USER = "alice"
CLUSTER = "canned"


def _pod_row(job: str, index: int, version: str, status: str = "RUNNING") -> dict[str, Any]:
    return {"pod": f"{job}-{index}", "job": job, "host": f"host-{index % 2}", "address": f"10.0.0.{index + 1}",
            "status": status, "version": version, "restarts": index, "ports": {"http": 20000 + index},
            "endpoint": f"10.0.0.{index + 1}:{20000 + index}", "reason": "", "updated_at": time.time() - 90}


class Model:
    """Jobs, pods and hosts; shared by replicas so a new leader answers like the old one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any, str | None]] = []
        self.logs_reads: dict[str, int] = {}
        self.logs_gone_after: int | None = None
        self.tenancy: TenancyState | None = None  # set by CannedCluster: it knows the user's key
        self.hosts: dict[str, dict[str, Any]] = {
            name: {"id": name, "pool": pool, "labels": ["ssd"] if i == 0 else [], "address": f"10.0.0.{i + 1}",
                   "status": "lost" if i == 2 else "alive", "admin": "online",
                   "capacity": {"cpu": 4.0, "memory": 8 << 30, "disks": {"ssd": 100 << 30}},
                   "free": {"cpu": 2.5, "memory": 6 << 30, "disks": {"ssd": 60 << 30}}, "containers": 2 - (i == 2) * 2}
            for i, (name, pool) in enumerate([("host-0", "default"), ("host-1", "default"), ("host-2", "gpu")])
        }

    def job(self, name: Any) -> dict[str, Any]:
        job = self.jobs.get(name) if isinstance(name, str) else None
        if job is None:
            raise NotFound(f"no job {name!r}", field="job")
        return job

    def pod(self, name: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        for job in self.jobs.values():
            for pod in job["pods"]:
                if pod["pod"] == name:
                    return job, pod
        raise NotFound(f"no pod {name!r}", field="pod")


def row(job: dict[str, Any]) -> dict[str, Any]:
    pods = job["pods"]
    return {"job": job["job"], "pool": job["pool"], "owner": job["owner"], "type": job["type"],
            "state": job["state"], "version": job["version"], "replicas": job["replicas"],
            "running": sum(p["status"] == "RUNNING" for p in pods),
            "pending": sum(p["status"] in ("PENDING", "DEPLOYING", "STARTING") for p in pods),
            "failed": sum(p["status"] == "FAILED" for p in pods), "updated_at": job["updated_at"]}


class AppMasterService:
    """The contract's methods over a Model; one instance per replica."""

    def __init__(self, model: Model, gate: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.gate = gate  # called before a method runs: failover tests block a call here

    def routes(self) -> dict[str, Callable[[Request], Any]]:
        names = ["job.submit", "job.plan", "job.update", "job.pause", "job.resume", "job.rollback", "job.cancel",
                 "job.scale", "job.stop", "job.remove", "job.list", "job.show", "job.exec", "job.trace",
                 "pod.list", "pod.show", "pod.recover", "pod.trace", "pod.logs"]
        routes = {name: self._wrap(name, getattr(self, name.replace(".", "_"))) for name in names}
        if self.model.tenancy is not None:
            routes.update({name: self._wrap(name, fn) for name, fn in self.model.tenancy.routes().items()})
        return routes

    def _wrap(self, name: str, fn: Callable[[Any, str | None], Any]) -> Callable[[Request], Any]:
        def handle(req: Request) -> Any:
            if self.gate is not None:
                self.gate(name)
            with self.model.lock:
                self.model.calls.append((name, req.body, req.key_name))
                return fn(req.body or {}, req.key_name)
        return handle

    # ---- jobs --------------------------------------------------------------------------------------
    def job_submit(self, body: dict[str, Any], user: str | None) -> Any:
        spec = parse_job(body.get("spec"))
        if spec.name in self.model.jobs:
            raise Conflict(f"job {spec.name!r} exists", field="job")
        if self.model.tenancy is not None:
            self.model.tenancy.check_submit(user, body.get("spec"))
        version = spec.program.version
        self.model.jobs[spec.name] = {
            "job": spec.name, "pool": spec.pool, "owner": user, "type": str(spec.type), "state": "DEPLOYING",
            "version": version, "replicas": spec.replicas, "spec": spec.to_dict(), "versions": [version],
            "update": None, "updated_at": time.time(),
            "pods": [_pod_row(spec.name, i, version, "PENDING") for i in range(spec.replicas)],
            "trace": [{"t": time.time(), "actor": "appmaster-1", "event": "submitted", "reason": f"by {user}"}],
        }
        return {"job": spec.name, "version": version, "state": "DEPLOYING"}

    def job_plan(self, body: dict[str, Any], user: str | None) -> Any:
        spec = parse_job(body.get("spec"))
        fits = min(spec.replicas, 2)
        return {"job": spec.name, "feasible": fits == spec.replicas, "placements": fits,
                "reasons": [] if fits == spec.replicas else [f"only 2 hosts have {spec.resources.cpu} cpu free"]}

    def job_update(self, body: dict[str, Any], user: str | None) -> Any:
        job = self.model.job(body.get("job"))
        spec = parse_job(body.get("spec"))
        target = spec.program.version
        job["versions"].append(target)
        job["update"] = {"target": target, "step": 1, "done": 0, "paused": False,
                         "breakpoint": body.get("breakpoint"), "failures": 0}
        job["state"] = "UPDATING"
        job["trace"].append({"t": time.time(), "actor": "appmaster-1", "event": "updated", "reason": f"to {target}"})
        return {"job": job["job"], "version": target, "state": "UPDATING"}

    def _set_state(self, body: dict[str, Any], state: str, event: str) -> Any:
        job = self.model.job(body.get("job"))
        job["state"] = state
        if job["update"] is not None:
            job["update"]["paused"] = state == "PAUSED"
        job["trace"].append({"t": time.time(), "actor": "appmaster-1", "event": event, "reason": ""})
        return {"job": job["job"], "state": state, "version": job["version"]}

    def job_pause(self, body: dict[str, Any], user: str | None) -> Any:
        return self._set_state(body, "PAUSED", "paused")

    def job_resume(self, body: dict[str, Any], user: str | None) -> Any:
        return self._set_state(body, "UPDATING", "resumed")

    def job_rollback(self, body: dict[str, Any], user: str | None) -> Any:
        return self._set_state(body, "UPDATING", "rollback")

    def job_cancel(self, body: dict[str, Any], user: str | None) -> Any:
        return self._set_state(body, "RUNNING", "cancelled")

    def job_stop(self, body: dict[str, Any], user: str | None) -> Any:
        job = self.model.job(body.get("job"))
        for pod in job["pods"]:
            pod["status"] = "STOPPED"
        return {"job": job["job"], "state": "STOPPED"}

    def job_scale(self, body: dict[str, Any], user: str | None) -> Any:
        job = self.model.job(body.get("job"))
        replicas = body.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise InvalidInput("must be >= 0", field="replicas")
        job["replicas"] = replicas
        job["pods"] = [_pod_row(job["job"], i, job["version"]) for i in range(replicas)]
        return {"job": job["job"], "replicas": replicas}

    def job_remove(self, body: dict[str, Any], user: str | None) -> Any:
        job = self.model.job(body.get("job"))
        del self.model.jobs[job["job"]]
        return {"job": job["job"], "removed": True}

    def job_list(self, body: dict[str, Any], user: str | None) -> Any:
        pool = body.get("pool")
        return [row(job) for job in self.model.jobs.values() if pool is None or job["pool"] == pool]

    def job_show(self, body: dict[str, Any], user: str | None) -> Any:
        job = self.model.job(body.get("job"))
        self._advance(job)
        return {**row(job), "spec": job["spec"], "versions": job["versions"], "update": job["update"],
                "pods": job["pods"]}

    def _advance(self, job: dict[str, Any]) -> None:
        """Each look at a deploying or updating job moves one pod forward, so waits see progress."""
        if job["state"] == "DEPLOYING":
            waiting = [p for p in job["pods"] if p["status"] != "RUNNING"]
            if waiting:
                waiting[0]["status"] = "RUNNING"
            if len(waiting) <= 1:
                job["state"] = "RUNNING"
        elif job["state"] == "UPDATING" and job["update"] is not None:
            update = job["update"]
            stale = [p for p in job["pods"] if p["version"] != update["target"]]
            if stale and update["breakpoint"] is not None and update["done"] >= update["breakpoint"]:
                job["state"] = "PAUSED"
                update["paused"] = True
                return
            if stale:
                stale[0]["version"] = update["target"]
                update["done"] += 1
            if len(stale) <= 1:
                job["state"], job["version"], job["update"] = "RUNNING", update["target"], None

    def job_exec(self, body: dict[str, Any], user: str | None) -> Any:
        job = self.model.job(body.get("job"))
        command = body.get("command")
        if not isinstance(command, str):
            raise InvalidInput("expected a string", field="command")
        failing = "false" in command.split()
        return {"results": {p["pod"]: {"exit_code": 1 if failing else 0, "stdout": f"{p['pod']} ran {command}\n",
                                       "stderr": "boom\n" if failing else ""} for p in job["pods"]}}

    def job_trace(self, body: dict[str, Any], user: str | None) -> Any:
        return self.model.job(body.get("job"))["trace"][-int(body.get("limit", 100)):]

    # ---- pods --------------------------------------------------------------------------------------
    def pod_list(self, body: dict[str, Any], user: str | None) -> Any:
        return self.model.job(body.get("job"))["pods"]

    def pod_show(self, body: dict[str, Any], user: str | None) -> Any:
        _, pod = self.model.pod(body.get("pod"))
        return {**pod, "history": [{"t": time.time() - 60, "status": "PENDING", "version": pod["version"]},
                                   {"t": time.time() - 30, "status": pod["status"], "version": pod["version"],
                                    "reason": "healthy"}]}

    def pod_recover(self, body: dict[str, Any], user: str | None) -> Any:
        _, pod = self.model.pod(body.get("pod"))
        pod["status"] = "PENDING"
        return {"pod": pod["pod"], "status": "PENDING"}

    def pod_trace(self, body: dict[str, Any], user: str | None) -> Any:
        _, pod = self.model.pod(body.get("pod"))
        return [{"t": time.time() - 10, "actor": "appmaster-1", "event": "placed", "host": pod["host"]},
                {"t": time.time(), "actor": "appmaster-1", "event": "RUNNING", "reason": "health check passed"}]

    def pod_logs(self, body: dict[str, Any], user: str | None) -> Any:
        _, pod = self.model.pod(body.get("pod"))
        name = pod["pod"]
        reads = self.model.logs_reads.get(name, 0)
        gone = self.model.logs_gone_after
        if gone is not None and reads >= gone:
            raise NotFound(f"container of {name} is destroyed", field="pod")
        self.model.logs_reads[name] = reads + 1
        lines = [f"{body.get('stream')} line {i}\n" for i in range(reads + 3)]  # the log grows on every read
        offset = body.get("offset")
        text = "".join(lines)
        if offset is None:
            data = "".join(lines[-int(body.get("tail", 100)):]) if body.get("tail") else ""
        else:
            data = text.encode()[offset:].decode()
        return {"data": data, "offset": len(text.encode())}


class ResManService:
    def __init__(self, model: Model) -> None:
        self.model = model

    def routes(self) -> dict[str, Callable[[Request], Any]]:
        def rec(name: str, fn: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Any]:
            def handle(req: Request) -> Any:
                with self.model.lock:
                    self.model.calls.append((name, req.body, req.key_name))
                    return fn(req.body or {})
            return handle

        def admin(state: str) -> Callable[[dict[str, Any]], Any]:
            def set_admin(body: dict[str, Any]) -> Any:
                host = self._host(body)
                host["admin"] = state
                if state == "draining":
                    host["containers"] = max(0, host["containers"] - 1)
                return {"host": host["id"], "admin": state}
            return set_admin

        def labels(add: bool) -> Callable[[dict[str, Any]], Any]:
            def change(body: dict[str, Any]) -> Any:
                wanted = list(body.get("labels") or [])
                named = [self._host({"host": h}) for h in body["hosts"]] if "hosts" in body else [self._host(body)]
                for host in named:
                    host["labels"] = sorted(set(host["labels"]) | set(wanted)) if add else \
                        [x for x in host["labels"] if x not in wanted]
                rows = [{"host": host["id"], "labels": host["labels"]} for host in named]
                return {"hosts": rows} if "hosts" in body else rows[0]
            return change

        def hosts(body: dict[str, Any]) -> Any:
            for host in self.model.hosts.values():  # a draining host loses a container per look
                if host["admin"] == "draining" and host["containers"]:
                    host["containers"] -= 1
            pool = body.get("pool")
            return [h for h in self.model.hosts.values() if pool is None or h["pool"] == pool]

        def move(body: dict[str, Any]) -> Any:
            host = self._host(body)
            host["pool"] = body.get("pool")
            return {"host": host["id"], "pool": host["pool"]}

        def host_trace(body: dict[str, Any]) -> Any:
            self._host(body)
            return []

        table: dict[str, Callable[[dict[str, Any]], Any]] = {
            "hosts.list": hosts, "host.trace": host_trace, "host.offline": admin("offline"), "host.online": admin("online"),
            "host.drain": admin("draining"), "host.label": labels(True), "host.unlabel": labels(False),
            "host.move": move}
        return {name: rec(name, fn) for name, fn in table.items()}

    def _host(self, body: dict[str, Any]) -> dict[str, Any]:
        host = self.model.hosts.get(body.get("host"))  # type: ignore[arg-type]
        if host is None:
            raise NotFound(f"no host {body.get('host')!r}", field="host")
        return host


class Replica:
    """One server of a role with its own ZooKeeper session (its leader record dies with it)."""

    def __init__(self, zk_hosts: str, role: str, identity: str, keyring: KeyRing,
                 routes: dict[str, Callable[[Request], Any]], *, blocking: bool = False) -> None:
        self.role = role
        self.identity = identity
        self.keypair = Keypair.generate()
        self.server = Server("tcp://127.0.0.1:0", self.keypair, keyring, name=identity)
        for name, fn in routes.items():
            self.server.route(name, fn, blocking=blocking)
        self.server.route("status", lambda req: {"role": role, "id": identity, "cluster": CLUSTER,
                                                 "leader": True, "leading_since": time.time()})
        self.server.start()
        self.zk: KazooClient | None = connect(zk_hosts, session_timeout=4.0)

    def lead(self) -> None:
        assert self.zk is not None
        publish_leader(self.zk, Paths(CLUSTER), self.role,
                       LeaderInfo(self.identity, self.server.endpoint, self.keypair.public))

    def kill(self) -> None:
        """Stop serving and drop the ZooKeeper session, as a crashed leader would."""
        self.server.stop()
        if self.zk is not None:
            self.zk.stop()
            self.zk.close()
            self.zk = None


class CannedCluster:
    """An AppMaster and a ResMan replica leading cluster ``canned``, a user key and a config file for it."""

    def __init__(self, zk_hosts: str, directory: Path, *, timeout: float = 5.0) -> None:
        self.zk_hosts = zk_hosts
        self.model = Model()
        self.user = Keypair.generate()
        self.key_path = directory / f"{USER}.key"
        self.user.save(self.key_path)
        self.keyring = KeyRing({self.user.public: USER})
        self.model.tenancy = TenancyState(USER, self.user.public, self.keyring, self.model.jobs)
        self.replicas: list[Replica] = []
        self.appmaster = self.add_replica("appmaster", "appmaster-1")
        self.resman = self.add_replica("resman", "resman-1")
        self.appmaster.lead()
        self.resman.lead()
        self.config_path = directory / "config"
        self.config_path.write_text(f"cluster: {CLUSTER}\nzookeeper: {zk_hosts}\nkey: {self.key_path.name}\n"
                                    f"timeout: {timeout}\n")

    def add_replica(self, role: str, identity: str, gate: Callable[[str], None] | None = None) -> Replica:
        service = AppMasterService(self.model, gate) if role == "appmaster" else ResManService(self.model)
        replica = Replica(self.zk_hosts, role, identity, self.keyring, service.routes(), blocking=gate is not None)
        self.replicas.append(replica)
        return replica

    def calls(self, method: str) -> list[tuple[Any, str | None]]:
        with self.model.lock:
            return [(body, key) for name, body, key in self.model.calls if name == method]

    def close(self) -> None:
        for replica in self.replicas:
            replica.kill()
