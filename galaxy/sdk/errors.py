"""The errors an SDK caller can catch: Galaxy's one hierarchy, plus two the SDK itself raises.

Everything is re-exported from :mod:`galaxy.errors`, so ``except galaxy.sdk.errors.NotFound`` and
``except galaxy.errors.NotFound`` catch the same thing::

    GalaxyError
    ├── InvalidInput ── NotConfigured     no cluster configured (names what to set)
    ├── JobFailed                         a job waited for (submit --wait) went FAILED
    ├── NotFound, Conflict, PermissionDenied, QuotaExceeded, ResourceUnavailable, HostError, ProtocolError
    └── RetryableError                    try again later
        ├── Timeout, Unreachable, NotLeader
        └── OutcomeUnknown                a write was sent, then its leader went away before answering

``OutcomeUnknown`` is retryable in the sense that the cluster is expected to answer again soon, but
the caller must look before re-sending: the old leader may have applied the write.
"""

from __future__ import annotations

from typing import Any

from galaxy.errors import (
    Conflict,
    GalaxyError,
    HostError,
    InvalidInput,
    NotFound,
    NotLeader,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    ResourceUnavailable,
    RetryableError,
    Timeout,
    Unreachable,
)


class NotConfigured(InvalidInput):
    """No cluster is configured: neither a config file nor the environment names one."""


class JobFailed(GalaxyError):
    """A job the caller waits for entered FAILED; ``job`` is its last ``job.show`` reply."""

    code = "job_failed"

    def __init__(self, message: str, *, job: dict[str, Any] | None = None) -> None:
        super().__init__(message, field="job")
        self.job = job or {}


class OutcomeUnknown(RetryableError):
    """A write reached a leader that then failed before answering; it may or may not have run."""

    code = "outcome_unknown"

    def __init__(self, message: str, *, method: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.method = method


__all__ = [
    "Conflict", "GalaxyError", "HostError", "InvalidInput", "JobFailed", "NotConfigured", "NotFound", "NotLeader",
    "OutcomeUnknown", "PermissionDenied", "ProtocolError", "QuotaExceeded", "ResourceUnavailable",
    "RetryableError", "Timeout", "Unreachable",
]
