"""Port reservation for the Agent: a range of host ports, handed out per owner, policed by iptables.

An Agent owns a port range (e.g. 20000–29999). :class:`PortTable` gives each container the ports it
asks for (dynamic ones from the range, or fixed numbers), never one port to two owners; it keeps
the range out of the kernel's ephemeral ports (``ip_local_reserved_ports``) and mirrors the holds
into an iptables chain ``GALAXY-<tag>`` that admits traffic to assigned ports and refuses it to the
rest of the range. The chain is the durable record an Agent adopts after a restart.

Plain values only (ranges, port numbers, owner ids): this package knows nothing of jobs or the
mesh. Every kernel step acts in the network namespace of the calling thread. See docs/ports.md.
"""

from __future__ import annotations

from galaxy.ports._errors import PortError
from galaxy.ports._firewall import CHAIN_PREFIX, PortFirewall, chain_name
from galaxy.ports._iptc import check_iptables, iptables_available
from galaxy.ports._probe import port_is_free
from galaxy.ports._sysctl import (
    ephemeral_overlap,
    ephemeral_range,
    read_reserved,
    reserve_ephemeral,
    unreserve_ephemeral,
)
from galaxy.ports._table import PortTable

__all__ = [
    "PortTable", "PortError", "PortFirewall", "chain_name", "CHAIN_PREFIX",
    "check_iptables", "iptables_available", "port_is_free",
    "reserve_ephemeral", "unreserve_ephemeral", "read_reserved", "ephemeral_range", "ephemeral_overlap",
]
