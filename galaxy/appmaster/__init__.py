"""The AppMaster: jobs, their versions and rolling updates, every pod, naming — the service layer's leader.

Layout by concern: `jobs` (job + versions record), `pods` (pod rows and the per-report decision),
`rollout` (rolling-update engine), `restart` (restart policy), `writer` (group commit to ZooKeeper),
`naming` (naming records), `groups` (agreement with ResMan's container groups, extra containers),
`resman_link` (the client following the ResMan leader), `workerkeys` (per-job worker keys),
`master` (in-memory model, report path, reconcile loop), `operations` (user verbs), `views` (rows),
`authority` (who may act on which job), `quotas` (what users' jobs hold against their quotas),
`tenancy_api` / `pools_api` (users, grants, quotas, usage, pools), `service` (the role plugged into
the replicated-leader loop). See docs/appmaster.md.
"""

from __future__ import annotations

from galaxy.appmaster.jobs import Job, needs_new_containers, new_job, summarise_state
from galaxy.appmaster.pods import Decision, PodRow, absorb, decide
from galaxy.appmaster.restart import FailureVerdict, describe_failure, is_failure, judge_failure
from galaxy.appmaster.rollout import Rollout

__all__ = ["Job", "new_job", "needs_new_containers", "summarise_state", "PodRow", "Decision", "absorb", "decide",
           "Rollout", "FailureVerdict", "is_failure", "judge_failure", "describe_failure", "AppMasterService"]


def __getattr__(name: str) -> object:
    # The service pulls in the mesh, ZooKeeper and the daemon; import it only when asked for.
    if name == "AppMasterService":
        from galaxy.appmaster.service import AppMasterService
        return AppMasterService
    raise AttributeError(name)
