"""The Agent's containers: every kernel step of create, destroy and re-adoption in one place.

Order matters for crash safety: resources are reserved in memory, then the record is written, then the
kernel objects are made (disks, then cgroups + namespaces + process). Destroy runs the same steps
backwards, each idempotent, so a half-made or half-destroyed container — found on restart by its
record in state `creating` / `destroying` — is undone by the very same code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from galaxy.agent.capacity import Ledger, host_address, host_capacity
from galaxy.agent.logs import read_log
from galaxy.agent.store import ContainerRecord, ContainerStore, DiskRecord
from galaxy.daemon.config import AgentSettings
from galaxy.disk import DiskPool, DiskRequest, HostDisk, Placement, ensure_disk, image_path, release_disk
from galaxy.errors import Conflict, GalaxyError, InvalidInput, NotFound
from galaxy.isolate import (
    BindMount,
    CgroupLimits,
    ContainerProcess,
    ContainerSpec,
    UserNamespace,
    Zygote,
    adopt,
    default_system_mounts,
    destroy,
    detect_cgroups,
    favor_dynamic_moves,
    host_secrets,
    launch,
    resolve_user,
    user_namespaces_available,
)
from galaxy.ports import PortTable
from galaxy.protocol import ContainerRequest
from galaxy.protocol.podtoken import seed_to_token

log = logging.getLogger(__name__)

APPWORKER_MODULE = "galaxy.appworker.main"
ZYGOTE_SWITCH = "GALAXY_ZYGOTE"
"""Set to ``off`` in the Agent's environment to launch every container by exec (for comparisons)."""


def listing_digest(containers: list[dict[str, Any]]) -> str:
    """A digest of a container list as ResMan matches it: everything but the usage figures."""
    plain = [{k: v for k, v in c.items() if k != "usage"} for c in containers]
    return hashlib.blake2b(json.dumps(plain, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def local_interpreter(argv: list[str]) -> list[str]:
    """Run the AppWorker (`<python> -m galaxy.appworker.main`) with this Agent's own Python.

    The AppMaster names the interpreter by its path on the AppMaster's host; the container mounts the
    Agent's Python (see `default_system_mounts`), which differs from it whenever the two run from
    different releases (an upgrade rolls the AppMaster before the Agents) or different prefixes.
    """
    if len(argv) >= 3 and argv[1:3] == ["-m", APPWORKER_MODULE]:
        return [sys.executable, *argv[1:]]
    return argv


class ContainerManager:
    def __init__(self, agent_id: str, state_dir: str, settings: AgentSettings,
                 on_change: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.agent_id = agent_id
        self.settings = settings
        self.root = Path(state_dir)
        # Only root may look inside: container records and shim configs carry worker secrets, work dirs
        # are tenants' files. The containers reach their own dirs through bind mounts, not this path.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.store = ContainerStore(state_dir)
        self.driver = detect_cgroups(settings.cgroup_root, base=settings.cgroup_base)
        self.address = host_address(settings.address)
        self.ledger = Ledger(host_capacity(settings.reserved_cpu, settings.reserved_memory))
        self.disks = DiskPool([HostDisk(d.path, d.medium, d.capacity) for d in settings.disks])
        lo, hi = settings.port_range
        self.ports = PortTable(agent_id, lo, hi, firewall=settings.firewall)
        self.system_mounts = default_system_mounts()
        self.hidden = host_secrets(self.system_mounts)  # the host's secrets below /etc, masked inside
        # Root in every container is this unprivileged host id (docs/security.md); None: no user namespace.
        self.userns_root: int | None = (settings.userns_root if settings.user_namespaces
                                        and user_namespaces_available() else None)
        self.on_change = on_change or (lambda _info: None)
        self._records: dict[str, ContainerRecord] = {}
        self._procs: dict[str, ContainerProcess] = {}
        self._lock = threading.RLock()          # guards the two maps
        self._busy: set[str] = set()            # ids with a create/destroy under way
        # The AppMaster leader as last seen in ZooKeeper (set by the daemon), passed to every new
        # container so its AppWorker can dial the master without a ZooKeeper session of its own.
        self.master_hint: dict[str, str] = {}
        # Forks AppWorker containers from a pre-imported interpreter (docs/agent.md, "zygote");
        # started by the first create, kept across Agent restarts, ended by purge().
        self.zygote: Zygote | None = None
        if os.environ.get(ZYGOTE_SWITCH, "on") != "off":
            self.zygote = Zygote(str(self.root / "zygote"), APPWORKER_MODULE)

    # -- naming --------------------------------------------------------------------------------
    def cgroup_name(self, container_id: str) -> str:
        return f"galaxy-{self.agent_id}/{container_id}"

    def container_dir(self, container_id: str) -> Path:
        return self.root / "containers" / container_id

    def owner_ids(self, user: str) -> tuple[int, int]:
        """The host uid and gid that own a container's work dir and disks: the job user's, except that
        root in a user namespace is ``userns_root`` on the host."""
        uid, gid = resolve_user(user)
        if self.userns_root is not None and uid == 0:
            return self.userns_root, self.userns_root
        return uid, gid

    def _inside(self, host_id: int) -> int:
        return 0 if self.userns_root is not None and host_id == self.userns_root else host_id

    def spec_for(self, record: ContainerRecord) -> ContainerSpec:
        req = record.parsed()
        cdir = self.container_dir(req.id)
        uid, gid = self._inside(record.uid), self._inside(record.gid)  # as seen inside the container
        env = {"GALAXY_CONTAINER_ID": req.id, "GALAXY_GROUP": req.group, "GALAXY_AGENT": self.agent_id,
               "GALAXY_HOST_ADDRESS": self.address,
               "GALAXY_USER": req.user, "GALAXY_UID": str(uid), "GALAXY_GID": str(gid),
               "GALAXY_CPU": f"{req.cpu:g}", "GALAXY_MEMORY": str(req.memory),
               **{f"GALAXY_PORT_{name.upper().replace('-', '_')}": str(port)
                  for name, port in record.ports.items()},
               **seed_to_token(req.env, req.id), **self.master_hint}
        mounts = [BindMount(d.mount_point, d.path, False) for d in record.disks]
        mounts += [BindMount(m.host, m.path, m.readonly) for m in req.mounts]
        return ContainerSpec(
            id=req.id, cgroup=self.cgroup_name(req.id),
            limits=CgroupLimits(cpu_cores=req.cpu, cpu_excess=req.cpu_excess, memory_bytes=req.memory,
                                pids_max=req.pids),
            argv=local_interpreter(list(req.argv)), env=env, state_dir=str(cdir), work_dir=self._work_dir(req.id),
            mounts=mounts, system_mounts=self.system_mounts,
            run_as=None if req.init_as_root else (uid, gid),
            hostname=req.id, capabilities=tuple(req.capabilities), hidden=self.hidden,
            userns=None if self.userns_root is None else UserNamespace(
                root_uid=self.userns_root, root_gid=self.userns_root, uid=uid, gid=gid),
        )

    # -- start-up ------------------------------------------------------------------------------
    def start(self) -> None:
        """Make the firewall chain, then re-adopt what survived the last run and undo what was half-made."""
        if self.settings.favor_dynmods:
            favor_dynamic_moves()
        self.ports.ensure()
        self._weigh_root()
        if self.zygote is not None:
            self.zygote.refind()
        kept: list[ContainerRecord] = []
        for record in self.store.load_all():
            if record.state in ("creating", "destroying"):
                log.warning("container %s was left %s by the last run: removing it", record.id, record.state)
                self._teardown(record)
            else:
                kept.append(record)
        # The records are the truth: the ports chain and the disk pool are made to match them at once.
        self.ports.rebuild({r.id: list(r.ports.values()) for r in kept})
        self.disks.rebuild([self._placement(r.id, d) for r in kept for d in r.disks])
        for record in kept:
            self._readopt(record)
        self._remove_orphans()

    def _weigh_root(self) -> None:
        """Give ``galaxy-<agent>`` the CPU weight of the cores the Agent offers (Kubernetes does the same
        for ``kubepods``). Left at the kernel's default it weighs one process: every container on the
        host together would then get one runnable process's share against the host's other processes,
        however many cores they reserved (each container's own weight only splits that share)."""
        try:
            self.driver.weigh(f"galaxy-{self.agent_id}", max(self.ledger.capacity.cpu, 0.002))
        except GalaxyError as err:
            log.warning("cannot set the cpu weight of this Agent's cgroup: %s", err)

    def _readopt(self, record: ContainerRecord) -> None:
        req = record.parsed()
        self.ledger.adopt(req.id, req.cpu, req.memory)
        for disk in record.disks:
            ensure_disk(disk.image, disk.size, disk.mount_point,
                        medium="tmpfs" if disk.image is None else "ext4", uid=record.uid, gid=record.gid)
        self._ensure_work(record)
        if record.state == "running":
            proc = adopt(self.spec_for(record), self.driver)
            if proc is not None and proc.alive():
                self._procs[req.id] = proc
            else:
                record.state = "exited"
                record.exit = (proc.exit_status() if proc is not None else None) or {"lost": True}
                self.store.save(record)
        self._records[req.id] = record
        log.info("re-adopted container %s (%s)", req.id, record.state)

    def _placement(self, owner: str, disk: DiskRecord) -> Placement:
        host_disk = next((HostDisk(d.path, d.medium, d.capacity) for d in self.settings.disks
                          if d.path == disk.host_disk), None)
        return Placement(owner, disk.index, host_disk, disk.medium, disk.size)

    def _remove_orphans(self) -> None:
        """Cgroups under this Agent's name that no record owns are a crash's leftovers."""
        parent = f"galaxy-{self.agent_id}"
        for name in self.driver.list(parent):
            cid = name.rsplit("/", 1)[-1]
            if cid not in self._records:
                log.warning("removing orphan cgroup %s", name)
                self.driver.release(name if "/" in name else f"{parent}/{name}")

    # -- create / destroy ----------------------------------------------------------------------
    def _claim(self, container_id: str) -> None:
        with self._lock:
            if container_id in self._busy:
                raise Conflict(f"container {container_id} is being created or destroyed", field="id")
            self._busy.add(container_id)

    def create(self, req: ContainerRequest) -> dict[str, Any]:
        self._claim(req.id)
        try:
            existing = self._records.get(req.id)
            if existing is not None:
                if existing.request == req.to_wire():
                    return self.describe(req.id)  # a retried create: same answer, nothing doubled
                raise Conflict(f"container {req.id} exists with another spec", field="id")
            return self._create(req)
        finally:
            with self._lock:
                self._busy.discard(req.id)

    def _create(self, req: ContainerRequest) -> dict[str, Any]:
        uid, gid = self.owner_ids(req.user)
        self.ledger.reserve(req.id, req.cpu, req.memory)
        record = ContainerRecord(request=req.to_wire(), uid=uid, gid=gid, created_at=time.time())
        try:
            placements = self.disks.reserve(req.id, [DiskRequest(d.medium, d.size) for d in req.disks])
            fixed = [p.port for p in req.ports if p.port is not None]
            dynamic = len(req.ports) - len(fixed)
            given = self.ports.hold(req.id, dynamic, fixed)
            free_dynamic = [p for p in given if p not in fixed]
            record.ports = {p.name: (p.port if p.port is not None else free_dynamic.pop(0)) for p in req.ports}
            cdir = self.container_dir(req.id)
            for placement, ask in zip(placements, req.disks, strict=True):
                image = None
                if placement.host_disk is not None:
                    image = image_path(placement.host_disk.path, self.agent_id, req.id, placement.index)
                record.disks.append(DiskRecord(placement.index, ask.medium, ask.size, ask.path,
                                               placement.host_disk.path if placement.host_disk else None,
                                               image, str(cdir / "disks" / str(placement.index))))
            record.work_disk = self.settings.work_disk
            self.store.save(record)  # from here on a crash leaves a `creating` record to undo
            for disk in record.disks:
                ensure_disk(disk.image, disk.size, disk.mount_point,
                            medium="tmpfs" if disk.image is None else "ext4", uid=uid, gid=gid)
            spec = self.spec_for(record)
            self._ensure_work(record)
            os.chown(spec.work_dir, uid, gid)  # the service writes its deploy and logs there
            proc = launch(spec, self.driver, self.zygote)
            # Right after launch (the reply filter names the cgroup, which exists now; an AppWorker
            # starts no service before its master's first command), and shut before the cgroup goes
            # (_teardown): the kernel re-checks every rule's cgroup on each commit of the table, a
            # rule naming a removed cgroup would fail them all.
            self.ports.open(req.id, self.driver.network_path(spec.cgroup))
        except BaseException:
            self._teardown(record)
            raise
        record.state = "running"
        self.store.save(record, durable=False)
        with self._lock:
            self._records[req.id] = record
            self._procs[req.id] = proc
        # No on_change here: the create's answer tells ResMan the container runs, and an event saying
        # the same doubled ResMan's messages in a burst. Every later change (exit, destroy) is reported.
        return self.describe(req.id)

    def _work_dir(self, container_id: str) -> str:
        return str(self.container_dir(container_id) / "work")

    def _work_image(self, container_id: str) -> str:
        return str(self.container_dir(container_id) / "work.img")

    def _ensure_work(self, record: ContainerRecord) -> None:
        """/galaxy/work: an ext4 image of ``record.work_disk`` bytes, so a service that fills it gets
        ENOSPC and the host's filesystem keeps its space (the image is sparse: it takes what is
        written); a plain directory for records made before work disks existed."""
        if record.work_disk:
            ensure_disk(self._work_image(record.id), record.work_disk, self._work_dir(record.id),
                        medium="ext4", uid=record.uid, gid=record.gid)
        else:
            Path(self._work_dir(record.id)).mkdir(parents=True, exist_ok=True)

    def destroy(self, container_id: str) -> bool:
        """True when something was destroyed, False when there was nothing (idempotent)."""
        self._claim(container_id)
        try:
            record = self._records.get(container_id)
            if record is None:
                return False
            record.state = "destroying"
            self.store.save(record)
            self._teardown(record)
            with self._lock:
                self._records.pop(container_id, None)
                self._procs.pop(container_id, None)
        finally:
            with self._lock:
                self._busy.discard(container_id)
        self.on_change({"id": container_id, "state": "destroyed", "group": record.request.get("group")})
        return True

    def _teardown(self, record: ContainerRecord) -> None:
        """Undo every step of a container, whatever state it reached; each step is idempotent.

        A kernel step that fails with an OSError (a broken host disk path, say) is collected like a
        GalaxyError: the cpu, memory, ports and disk space are released in memory either way, so one
        failed creation never shrinks what this host offers.
        """
        errors: list[str] = []
        try:
            self.ports.shut(record.id)  # before its cgroup goes (see _create)
        except GalaxyError as err:
            errors.append(str(err))
        try:
            destroy(self.spec_for(record), self.driver)
        except (GalaxyError, OSError) as err:
            errors.append(str(err))
        for disk in record.disks:
            try:
                release_disk(disk.image, disk.mount_point)
            except (GalaxyError, OSError) as err:
                errors.append(str(err))
        if record.work_disk:
            try:
                release_disk(self._work_image(record.id), self._work_dir(record.id))
            except (GalaxyError, OSError) as err:
                errors.append(str(err))
        self.ports.release(record.id)
        self.disks.free(record.id)
        self.ledger.release(record.id)
        if errors:  # keep the record (and never rmtree through a disk still mounted); the next start retries
            log.error("container %s not fully removed: %s", record.id, "; ".join(errors))
            record.state = "destroying"
            self.store.save(record)
            raise GalaxyError(f"container {record.id} not fully removed: {'; '.join(errors)}")
        shutil.rmtree(self.container_dir(record.id), ignore_errors=True)
        self.store.delete(record.id)

    def destroy_all(self) -> None:
        for cid in list(self._records):
            self.destroy(cid)

    def purge(self) -> None:
        """Take this Agent off the host for good: every container, its parent cgroup, its iptables chain
        and port reservation. For decommissioning and for test teardown; an Agent restart never does this."""
        try:
            self.destroy_all()
        finally:
            if self.zygote is not None:
                self.zygote.stop()
                self.zygote.close()
            self.ports.close(remove_rules=True)
            self.driver.remove(f"galaxy-{self.agent_id}")

    # -- observing -----------------------------------------------------------------------------
    def poll(self) -> list[dict[str, Any]]:
        """Notice containers whose PID 1 ended; returns (and reports) their new state."""
        changed = []
        with self._lock:
            running = [(cid, p) for cid, p in self._procs.items() if self._records[cid].state == "running"]
        for cid, proc in running:
            if proc.alive():
                continue
            status = proc.exit_status()
            if status is None:
                continue  # PID 1 has ended and its shim is writing the status: the next poll reads it
            record = self._records[cid]
            record.state = "exited"
            record.exit = status
            self.store.save(record)
            info = self.describe(cid)
            changed.append(info)
            self.on_change(info)
        return changed

    def describe(self, container_id: str, *, usage: bool = False) -> dict[str, Any]:
        record = self._records.get(container_id)
        if record is None:
            raise NotFound(f"no container {container_id} on agent {self.agent_id}", field="id")
        req = record.request
        info: dict[str, Any] = {
            "id": record.id, "group": req["group"], "state": record.state, "cpu": req["cpu"],
            "memory": req["memory"], "ports": dict(record.ports), "exit": record.exit,
            "disks": [{"medium": d.medium, "size": d.size, "path": d.path} for d in record.disks],
            "created_at": record.created_at,
        }
        proc = self._procs.get(container_id)
        if proc is not None:
            info["pid"] = proc.pid
        if usage and record.state == "running":
            try:
                u = self.driver.usage(self.cgroup_name(container_id))
                info["usage"] = {"cpu_seconds": u.cpu_seconds, "memory": u.memory_bytes, "oom_kills": u.oom_kills}
            except GalaxyError:
                info["usage"] = None
        return info

    def logs(self, container_id: str, stream: str = "stdout", tail: int = 100,
             offset: int | None = None) -> dict[str, Any]:
        """Read a container's log: the last `tail` lines, or what follows `offset` (for --follow).

        `stdout`/`stderr` are the files the AppWorker writes for the service (work/log/<stream>.log);
        `console` is PID 1's own output. Readable until the container is destroyed, also after it exited.
        """
        if container_id not in self._records:
            raise NotFound(f"no container {container_id} on agent {self.agent_id}", field="container")
        cdir = self.container_dir(container_id)
        files = {"stdout": cdir / "work" / "log" / "stdout.log", "stderr": cdir / "work" / "log" / "stderr.log",
                 "console": cdir / "console.log"}
        if stream not in files:
            raise InvalidInput("expected stdout, stderr or console", field="stream")
        return read_log(files[stream], tail=tail, offset=offset)

    def list(self, *, usage: bool = False) -> list[dict[str, Any]]:
        return [self.describe(cid, usage=usage) for cid in sorted(self._records)]

    def resources(self, known: str | None = None) -> dict[str, Any]:
        """Capacity, free figures and the containers with their usage, and the list's digest (without
        usage). When `known` (the digest ResMan last applied) is still the list's, the answer is
        `{"unchanged", "free", "usage": {id: usage}}`: ResMan's polls of a steady host stay cheap, and
        the usage figures still reach its accounting on every poll."""
        free = self.ledger.free()
        free_wire = {"cpu": free.cpu, "memory": free.memory, "disks": self.disks.free_bytes(),
                     "ports": self.ports.free_count()}
        containers = self.list(usage=True)
        digest = listing_digest(containers)
        if known is not None and known == digest:
            return {"unchanged": digest, "free": free_wire,
                    "usage": {c["id"]: c["usage"] for c in containers if "usage" in c}}
        cap = self.ledger.capacity
        return {"capacity": {"cpu": cap.cpu, "memory": cap.memory}, "free": free_wire,
                "containers": containers, "digest": digest}

    def close(self) -> None:
        """Stop managing; running containers (and the zygote) stay up for the next Agent to re-adopt."""
        self.ports.close(remove_rules=False)
        if self.zygote is not None:
            self.zygote.close()
