"""ResMan: container groups, the scheduler, reconciliation, hosts and safe mode (docs/resman.md).

`ResManService` is what `galaxy-resman` runs while it leads; `Engine` is the loop underneath it
(usable alone in tests and benchmarks with `serve(engine, server)`).
"""

from __future__ import annotations

from galaxy.resman.engine import Engine
from galaxy.resman.model import Container, Group
from galaxy.resman.service import ResManService, serve
from galaxy.resman.settings import ResManSettings

__all__ = ["Container", "Engine", "Group", "ResManService", "ResManSettings", "serve"]
