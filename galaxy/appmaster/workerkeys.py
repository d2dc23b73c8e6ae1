"""Per-job CURVE keys and per-pod tokens for AppWorkers: a worker may speak for its own pod only.

Each job gets one keypair at submit; the secret goes into the container's env (from where the worker
takes it and hides it from the service), the public key into the AppMaster's KeyRing as
`worker:<job>`. A `pod.report` is accepted only over a connection made with that key, for that job,
from the routing identity of the pod itself, carrying the pod's own token (galaxy/protocol/podtoken.py):
the job key is shared by all its pods, the token is not.

The mesh binds an identity to a key; every pod of a job has the same key, so that binding cannot
keep one pod from claiming another's identity. `PodIdentities` binds each pod's identity, at its
first accepted call, to what that call proved: the pod's token (per pod, derived from a seed no
container holds) — or, for a job from before pod tokens, the connection that first spoke for it.
A pod's own CURVE key would let the mesh do this itself; it is not done (the Agent would have to
make a key per container and the AppMaster admit each before the pod dials), so the token is the proof.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from galaxy.errors import IdentityRefused, PermissionDenied
from galaxy.mesh import Keypair, KeyRing, Request, fingerprint
from galaxy.protocol import podtoken

log = logging.getLogger(__name__)

PREFIX = "worker:"
POD_BIND_GRACE = 10.0      # a tokenless pod's identity stays with its connection this long after its last call
REFUSAL_LOG_EVERY = 60.0   # one log line per pod refused per this many seconds


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


class PodIdentities:
    """Each pod's routing identity, bound at its first accepted call to the proof that call carried.

    `admit` runs the checks above (the job's key, the identity is the pod's, the pod's token) and
    then the binding: a pod with a token may speak from any connection that carries the token (its
    AppWorker restarted, or dialled again) — another pod cannot make that token; a pod of a job
    without tokens is bound to its connection (`Request.conn`) until that connection has been
    silent for `grace` seconds, so another pod of the job cannot take its identity over while it
    lives. Every refusal is counted in `refused` and logged (once a minute per pod)."""

    def __init__(self, grace: float = POD_BIND_GRACE, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self.clock = clock
        self.refused = 0
        self._lock = threading.Lock()
        self._bound: dict[str, tuple[int, float]] = {}    # pod -> (connection, last accepted call)
        self._logged: dict[str, float] = {}

    def admit(self, req: Request, job: str, seed: str | None, pod: str) -> None:
        """Raise PermissionDenied (IdentityRefused for a taken identity) unless `req` speaks for
        `pod` of `job` as that pod. `seed` is the job's pod seed ("" for a job from before pod
        tokens); None when the job is unknown here: the key and identity are checked, nothing bound."""
        try:
            check_worker(req, job, pod)
            if seed is not None:
                check_pod_token(req, seed, pod)
        except PermissionDenied as err:
            self._refuse(req, pod, err)
            raise
        if seed is None:
            return
        now = self.clock()
        with self._lock:
            bound = self._bound.get(pod)
            if not seed and bound is not None and bound[0] != req.conn and now - bound[1] < self.grace:
                taken = IdentityRefused(f"pod {pod!r} is bound to another connection of job {job!r}", field="pod")
                self._refuse(req, pod, taken)
                raise taken
            self._bound[pod] = (req.conn, now)

    def forget(self, pod: str) -> None:
        """The pod is gone: its identity is free (and its binding no longer takes memory)."""
        with self._lock:
            self._bound.pop(pod, None)
            self._logged.pop(pod, None)

    def _refuse(self, req: Request, pod: str, err: PermissionDenied) -> None:
        self.refused += 1
        now = self.clock()
        if self._logged.get(pod, 0.0) <= now:
            if len(self._logged) >= 4096:
                self._logged.clear()
            self._logged[pod] = now + REFUSAL_LOG_EVERY
            log.warning("refused a call for pod %s from identity %r, key %s (%s): %s", pod, req.peer,
                        fingerprint(req.key), req.key_name, err)
