"""Message definitions the daemons share: method names and validated request bodies.

Daemons never import each other; they agree only on what is here. Every body is plain CBOR data
(dicts, lists, str, int, float, bool); `from_wire` validates a body and names the bad field, so a
malformed request is refused with `InvalidInput` before anything is changed.
"""

from galaxy.protocol.container import (
    CONTAINER_STATES,
    ContainerRequest,
    DiskAsk,
    MountAsk,
    PortAsk,
)
from galaxy.protocol.methods import AgentMethods
from galaxy.protocol.resman import ResManApi

__all__ = ["CONTAINER_STATES", "ContainerRequest", "DiskAsk", "MountAsk", "PortAsk", "AgentMethods",
           "ResManApi"]
