"""The disk package's one error type.

A failed kernel step (mkfs, loop ioctl, mount) is a host fault the Agent reports and retries; it is
a :class:`galaxy.errors.HostError` so it crosses the mesh with code ``"host"``. Bad arguments raise
:class:`galaxy.errors.InvalidInput` and exhausted capacity :class:`galaxy.errors.ResourceUnavailable`
instead, because the caller acts on those differently (fix the request, place elsewhere).
"""

from __future__ import annotations

from galaxy.errors import HostError


class DiskError(HostError):
    """A loop device, filesystem or mount could not be made, found or removed."""


__all__ = ["DiskError"]
