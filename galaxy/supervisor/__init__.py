"""Galaxy's own small supervisor, for hosts without systemd.

It runs a host's Galaxy daemons (and ZooKeeper) from one YAML config, restarts a program that exits
with exponential backoff, stops programs by their PID (never by name), keeps a pidfile per program,
and takes requests (`ensure`, `restart`, `signal`, `stop`) from a control command through its run
directory. ``ensure`` restarts a program exactly when its definition or a watched file (its config,
its key) changed since it was started, which is what makes a deployment both idempotent and safe
against a lost handler. See docs/deploy.md.

    python -m galaxy.supervisor ensure resman --config /etc/galaxy/supervisor.yaml
"""

from __future__ import annotations

from galaxy.supervisor._config import HealthCheck, ProgramSpec, SupervisorConfig, load_config
from galaxy.supervisor._control import Control, check_health
from galaxy.supervisor._program import Program, read_pidfile
from galaxy.supervisor._supervisor import Supervisor, run_foreground

__all__ = [
    "Control", "HealthCheck", "Program", "ProgramSpec", "Supervisor", "SupervisorConfig", "check_health",
    "load_config", "read_pidfile", "run_foreground",
]
