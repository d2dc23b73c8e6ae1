"""Per-job CURVE keys and per-pod tokens for AppWorkers: a worker may speak for its own pod only.

Each job gets one keypair at submit; the secret goes into the container's env (from where the worker
takes it and hides it from the service), the public key into the AppMaster's KeyRing as
`worker:<job>`. A `pod.report` is accepted only over a connection made with that key, for that job,
from the routing identity of the pod itself, carrying the pod's own token (galaxy/protocol/podtoken.py):
the job key is shared by all its pods, the token is not.
"""

from __future__ import annotations

from galaxy.errors import PermissionDenied
from galaxy.mesh import Keypair, KeyRing, Request
from galaxy.protocol import podtoken

PREFIX = "worker:"


def key_name(job: str) -> str:
    return f"{PREFIX}{job}"


def is_worker(name: str | None) -> bool:
    return bool(name) and str(name).startswith(PREFIX)


def new_worker_keys() -> Keypair:
    return Keypair.generate()


def admit(keyring: KeyRing, job: str, public: str) -> None:
    """Trust this job's workers (idempotent: a new leader re-admits every job's key)."""
    if public and keyring.name_of(public) != key_name(job):
        keyring.add(public, key_name(job))


def revoke(keyring: KeyRing, public: str) -> None:
    if public:
        keyring.remove(public)


def check_worker(req: Request, job: str, pod: str) -> None:
    """A report must come from `pod` itself, over its job's key."""
    if req.key_name != key_name(job):
        raise PermissionDenied(f"key {req.key_name!r} may not report for job {job!r}", field="job")
    if req.peer != pod:
        raise PermissionDenied(f"connection {req.peer!r} may not report for pod {pod!r}", field="pod")


def check_pod_token(req: Request, seed: str, pod: str) -> None:
    """The call must carry `pod`'s own token (galaxy/protocol/podtoken.py). Jobs submitted before pod
    tokens existed have no seed; their pods are held to the job key and routing name alone."""
    body = req.body if isinstance(req.body, dict) else {}
    if seed and not podtoken.token_matches(seed, pod, body.get(podtoken.TOKEN_FIELD)):
        raise PermissionDenied(f"this worker may not speak for pod {pod!r}", field="pod")


def worker_env(job: str, keys: Keypair) -> dict[str, str]:
    return {"GALAXY_WORKER_KEY": keys.secret, "GALAXY_WORKER_PUB": keys.public}
