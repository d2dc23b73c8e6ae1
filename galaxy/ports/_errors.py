"""The ports package's one error type.

A failed kernel step (libiptc commit, sysctl write, a missing iptables module) is a host fault the
Agent reports and may retry: :class:`PortError` is a :class:`galaxy.errors.HostError`, so it crosses
the mesh with code ``"host"``. A port somebody else holds is not a host fault but exhausted capacity,
raised as :class:`galaxy.errors.ResourceUnavailable` (place the container elsewhere); a malformed
argument is :class:`galaxy.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

from galaxy.errors import HostError


class PortError(HostError):
    """The firewall chain or the ephemeral-port reservation could not be read or changed."""


__all__ = ["PortError"]
