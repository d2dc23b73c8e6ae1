"""The one error type of ``galaxy.isolate``.

A kernel step that fails (cgroup write, mount, namespace, exec of the init) raises :class:`IsolateError`,
a :class:`galaxy.errors.HostError`, so the Agent reports it as a host problem (``code "host"``) and
ResMan may retry the container elsewhere. Bad values the caller passes are ``InvalidInput`` instead, and
a container that is already running where a new one was asked for is ``Conflict``.
"""

from __future__ import annotations

from galaxy.errors import HostError


class IsolateError(HostError):
    """A cgroup, namespace, mount or exec step failed on this host."""


__all__ = ["IsolateError"]
