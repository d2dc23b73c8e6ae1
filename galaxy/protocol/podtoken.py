"""A pod's own credential: the token that lets an AppWorker speak for its pod and no other.

All pods of a job share the job's CURVE transport key, so the key alone cannot tell one pod from
another, and a routing name is whatever the connecting worker chose. So each job also has a secret
``pod_seed`` (kept by the AppMaster, carried to the Agent in the group's env as ``GALAXY_POD_SEED``);
the Agent never hands the seed to a container: it replaces it with ``GALAXY_POD_TOKEN`` =
HMAC-SHA256(seed, container id). The worker sends the token with every call; the AppMaster, which
holds the seed, recomputes it for the pod the call names. A pod that learns its own token (its
service running as root, say) can still speak only for itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SEED_VAR = "GALAXY_POD_SEED"
TOKEN_VAR = "GALAXY_POD_TOKEN"
TOKEN_FIELD = "pod_token"
"""The key of the token in every worker → AppMaster request body."""


def new_pod_seed() -> str:
    return secrets.token_hex(32)


def pod_token(seed: str, pod: str) -> str:
    return hmac.new(bytes.fromhex(seed), pod.encode(), hashlib.sha256).hexdigest()


def token_matches(seed: str, pod: str, token: object) -> bool:
    return isinstance(token, str) and hmac.compare_digest(pod_token(seed, pod), token)


def seed_to_token(env: dict[str, str], pod: str) -> dict[str, str]:
    """The Agent's step: the container's env with the job's seed replaced by this pod's token."""
    seed = env.get(SEED_VAR)
    if seed is None:
        return env
    out = {k: v for k, v in env.items() if k != SEED_VAR}
    out[TOKEN_VAR] = pod_token(seed, pod)
    return out


__all__ = ["SEED_VAR", "TOKEN_VAR", "TOKEN_FIELD", "new_pod_seed", "pod_token", "seed_to_token", "token_matches"]
