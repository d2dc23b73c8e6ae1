"""Method names on the mesh, one place, so a typo is an AttributeError and not a silent not_found."""

from __future__ import annotations


class AgentMethods:
    """Served by an Agent (requests started by ResMan over the Agent's own DEALER connection)."""

    RESOURCES = "agent.resources"          # -> capacity, free, containers with usage
    CREATE = "container.create"            # ContainerRequest -> {id, state, ports}
    DESTROY = "container.destroy"          # {id} -> {id, destroyed: bool}
    LIST = "container.list"                # -> [container]
    LOGS = "container.logs"                # {id, stream, tail} -> {lines}
