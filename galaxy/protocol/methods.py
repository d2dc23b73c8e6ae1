"""Method names on the mesh, one place, so a typo is an AttributeError and not a silent not_found."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from galaxy.errors import GalaxyError, InvalidInput


class AgentMethods:
    """Served by an Agent (requests started by ResMan over the Agent's own DEALER connection)."""

    # {"digest": d} | None -> capacity, free, containers with usage, digest (of the list without usage);
    # when d is still the list's digest: {"unchanged": d, "free", "usage": {id: usage}} (a steady host's
    # poll need not carry its list: ResMan matches the one it holds).
    RESOURCES = "agent.resources"
    # The create's answer is the Agent's word that the container runs: no `container.state` "running"
    # event follows it (events report every later change: exit, destroy).
    CREATE = "container.create"            # ContainerRequest -> {id, state, ports}
    # {"containers": [ContainerRequest, ...]} -> {"results": [{"id", "container": info} | {"id", "error"}]}
    # One request for many creates: at 10,000 hosts the per-request cost (ResMan's futures, the mesh
    # hops, the Agent's dispatch) dominated; an Agent that answers not_found gets single creates.
    CREATE_MANY = "container.create_many"
    DESTROY = "container.destroy"          # {id} -> {id, destroyed: bool}
    LIST = "container.list"                # -> [container]
    LOGS = "container.logs"                # {id, stream, tail} -> {lines}

    @staticmethod
    def serve_create_many(body: Any, create: Callable[[Any], dict[str, Any]],
                          map_items: Callable[..., Iterable[dict[str, Any]]] = map) -> dict[str, Any]:
        """How an Agent answers CREATE_MANY: `create(one_body)` for each, each failure kept apart (one
        container's error must not fail the others), so Agent and simulator agree. `map_items` lets a
        real Agent run the creates side by side (its create workers), as single requests would."""
        items = body.get("containers") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise InvalidInput("expected a list of containers", field="containers")

        def one(item: Any) -> dict[str, Any]:
            cid = item.get("id") if isinstance(item, dict) else None
            try:
                return {"id": cid, "container": create(item)}
            except GalaxyError as err:
                return {"id": cid, "error": err.to_wire()}
        return {"results": list(map_items(one, items))}
