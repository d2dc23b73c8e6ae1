"""The AppWorker: PID 1 of every container, running one service instance as its AppMaster says.

It pulls (``pod.report`` → PodCommand) on an interval, deploys packages into the work dir, starts,
health-checks, stops, updates in place and reloads the service, runs ``exec`` commands, reaps
orphans, and keeps the service up on its own while no master answers. See docs/appworker.md.
"""

from __future__ import annotations

from galaxy.appworker.deploy import DeployError, Workspace, fetch, unpack
from galaxy.appworker.exec import CommandResult, run_command
from galaxy.appworker.link import MasterLink
from galaxy.appworker.logs import RotatingLog
from galaxy.appworker.program import ProgramPlan
from galaxy.appworker.reaper import ExitInfo, Reaper, RunAs
from galaxy.appworker.reporter import Transport
from galaxy.appworker.settings import WorkerSettings
from galaxy.appworker.worker import Worker

__all__ = [
    "CommandResult", "DeployError", "ExitInfo", "MasterLink", "ProgramPlan", "Reaper", "RotatingLog", "RunAs",
    "Transport", "Worker", "WorkerSettings", "Workspace", "fetch", "run_command", "unpack",
]
