"""What the worker learns from its environment, read once at start and checked in one place.

The Agent passes everything a worker needs as ``GALAXY_*`` variables (see galaxy/agent/containers.py
``spec_for``); the AppMaster adds the ZooKeeper address, the cluster and this job's worker keypair.
The keypair is secret: it is taken out of ``os.environ`` at once so no child process (deploy, start,
health, exec) can read it and speak to the AppMaster as this job.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from galaxy.errors import InvalidInput

SECRET_VARS = ("GALAXY_WORKER_KEY", "GALAXY_WORKER_PUB", "GALAXY_POD_TOKEN")
# The AppMaster leader the Agent knew when it made the container: a hint that spares the worker a
# ZooKeeper session (galaxy/appworker/link.py). Worker plumbing, so not passed on to the service.
MASTER_HINT_VARS = ("GALAXY_MASTER_ENDPOINT", "GALAXY_MASTER_KEY", "GALAXY_MASTER_ID")
REQUIRED_VARS = ("GALAXY_CONTAINER_ID", "GALAXY_GROUP", "GALAXY_ZOOKEEPER", "GALAXY_CLUSTER",
                 "GALAXY_WORKER_KEY", "GALAXY_WORKER_PUB", "GALAXY_UID", "GALAXY_GID")
PORT_PREFIX = "GALAXY_PORT_"
DEFAULT_WORK_DIR = "/galaxy/work"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PACKAGE_MAX_BYTES = 2 << 30  # per package, as downloaded; unpacked, 4 × that (package.py)


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """Everything the worker needs besides the commands its master sends."""

    pod: str
    job: str
    uid: int
    gid: int
    user: str = ""
    host_address: str = ""
    host: str = ""            # the Agent's id: what `pod list` shows as HOST, as ResMan's listing does
    ports: dict[str, int] = field(default_factory=dict)       # port name (lower case) -> port
    container_env: dict[str, str] = field(default_factory=dict)  # the GALAXY_* vars a service sees
    work_dir: Path = Path(DEFAULT_WORK_DIR)
    report_interval: float = 1.0
    zookeeper: str = ""
    zookeeper_ca_pem: str = ""  # the cluster's ZooKeeper CA certificate: TLS to ZooKeeper when set
    cluster: str = ""
    worker_public: str = ""
    worker_secret: str = ""
    pod_token: str = ""       # this pod's own credential (galaxy/protocol/podtoken.py), sent with each call
    master_endpoint: str = ""
    master_key: str = ""
    master_identity: str = ""
    log_max_bytes: int = 16 << 20
    log_keep: int = 3
    start_timeout: float = 60.0
    settle_time: float = 1.0
    stop_grace: float = 10.0
    keep_versions: int = 3
    package_max_bytes: int = DEFAULT_PACKAGE_MAX_BYTES

    def __repr__(self) -> str:  # never print the secret key into a log
        return f"WorkerSettings(pod={self.pod!r}, job={self.job!r}, uid={self.uid}, work_dir={self.work_dir})"

    @property
    def endpoint(self) -> dict[str, object]:
        """What the pod reports as its endpoint: where other services reach it."""
        return {"address": self.host_address, "ports": dict(self.ports)}

    def port(self, name: str) -> int | None:
        return self.ports.get(name.lower().replace("-", "_"))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, require_master: bool = True) -> WorkerSettings:
        """Settings from ``environ``; InvalidInput names the first missing or malformed variable.

        ``require_master=False`` drops the ZooKeeper and key variables from the required set, for a
        worker driven through an injected transport.
        """
        required = REQUIRED_VARS if require_master else ("GALAXY_CONTAINER_ID", "GALAXY_GROUP",
                                                         "GALAXY_UID", "GALAXY_GID")
        for name in required:
            if not environ.get(name):
                raise InvalidInput("is required in worker mode (the Agent and AppMaster set it)", field=name)
        ports: dict[str, int] = {}
        for name, value in environ.items():
            if name.startswith(PORT_PREFIX) and len(name) > len(PORT_PREFIX):
                ports[name[len(PORT_PREFIX):].lower()] = _int(name, value, 1, 65535)
        return cls(
            pod=environ["GALAXY_CONTAINER_ID"], job=environ["GALAXY_GROUP"],
            uid=_int("GALAXY_UID", environ["GALAXY_UID"], 0, 2**32 - 2),
            gid=_int("GALAXY_GID", environ["GALAXY_GID"], 0, 2**32 - 2),
            user=environ.get("GALAXY_USER", ""), host_address=environ.get("GALAXY_HOST_ADDRESS", ""),
            host=environ.get("GALAXY_AGENT") or environ.get("GALAXY_HOST_ADDRESS", ""),
            ports=ports,
            container_env={k: v for k, v in environ.items()
                           if k.startswith("GALAXY_") and k not in SECRET_VARS and k not in MASTER_HINT_VARS},
            work_dir=Path(environ.get("GALAXY_WORK_DIR") or DEFAULT_WORK_DIR),
            report_interval=_float(environ, "GALAXY_REPORT_INTERVAL", 1.0, 0.05, 60.0),
            zookeeper=environ.get("GALAXY_ZOOKEEPER", ""), cluster=environ.get("GALAXY_CLUSTER", ""),
            zookeeper_ca_pem=environ.get("GALAXY_ZOOKEEPER_CA_PEM", ""),
            worker_public=environ.get("GALAXY_WORKER_PUB", ""),
            worker_secret=environ.get("GALAXY_WORKER_KEY", ""),
            pod_token=environ.get("GALAXY_POD_TOKEN", ""),
            master_endpoint=environ.get("GALAXY_MASTER_ENDPOINT", ""),
            master_key=environ.get("GALAXY_MASTER_KEY", ""),
            master_identity=environ.get("GALAXY_MASTER_ID", ""),
            log_max_bytes=int(_float(environ, "GALAXY_LOG_MAX_BYTES", 16 << 20, 1024, 2**40)),
            log_keep=int(_float(environ, "GALAXY_LOG_KEEP", 3, 1, 100)),
            start_timeout=_float(environ, "GALAXY_START_TIMEOUT", 60.0, 0.1, 86400.0),
            settle_time=_float(environ, "GALAXY_SETTLE_TIME", 1.0, 0.0, 600.0),
            stop_grace=_float(environ, "GALAXY_STOP_GRACE", 10.0, 0.0, 3600.0),
            package_max_bytes=int(_float(environ, "GALAXY_PACKAGE_MAX_BYTES", DEFAULT_PACKAGE_MAX_BYTES, 1024,
                                         2**50)),
        )


def take_secrets(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Remove the worker keypair from ``environ`` (normally ``os.environ``) and return it."""
    return {name: environ.pop(name) for name in SECRET_VARS if name in environ}


def service_base_env(settings: WorkerSettings, job_env: Mapping[str, str]) -> dict[str, str]:
    """The environment every child of the worker starts from: a plain PATH and HOME, the job's env,
    then the container's GALAXY_* variables (which the job cannot override)."""
    env = {"PATH": SYSTEM_PATH, "HOME": str(settings.work_dir), "LANG": "C.UTF-8"}
    env.update(job_env)
    env.update(settings.container_env)
    for name in SECRET_VARS:
        env.pop(name, None)
    return env


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"expected an integer, got {value!r}", field=name) from None
    if not low <= number <= high:
        raise InvalidInput(f"expected {low}..{high}, got {number}", field=name)
    return number


def _float(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        number = float(raw)
    except ValueError:
        raise InvalidInput(f"expected a number, got {raw!r}", field=name) from None
    if not low <= number <= high:
        raise InvalidInput(f"expected {low:g}..{high:g}, got {raw}", field=name)
    return number
