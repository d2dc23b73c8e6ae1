"""The AppMaster's user API on the mesh: method names, job states and body checks, in one place.

The SDK/CLI and the AppMaster agree only on what is here (and on `galaxy.protocol.pod` for workers).
The identity behind a request is the CURVE key that connected (`Request.key_name`), never a body field,
so no body below carries a user name.
"""

from __future__ import annotations

import math
from typing import Any

from galaxy.errors import InvalidInput


class AppMasterApi:
    """Method names served by the AppMaster leader."""

    JOB_SUBMIT = "job.submit"        # {"spec"} -> {"job", "version", "state"}
    JOB_PLAN = "job.plan"            # {"spec"} -> {"job", "feasible", "placements", "reasons"}
    JOB_UPDATE = "job.update"        # {"job", "spec", "breakpoint"} -> {"job", "version", "state"}
    JOB_PAUSE = "job.pause"          # {"job"} -> {"job", "state", "version"}
    JOB_RESUME = "job.resume"
    JOB_ROLLBACK = "job.rollback"
    JOB_CANCEL = "job.cancel"
    JOB_SCALE = "job.scale"          # {"job", "replicas"} -> {"job", "replicas"}
    JOB_STOP = "job.stop"            # {"job"} -> {"job", "state"}
    JOB_REMOVE = "job.remove"        # {"job"} -> {"job", "removed"}
    JOB_LIST = "job.list"            # {} | {"pool"} -> [job row]
    JOB_SHOW = "job.show"            # {"job"} -> job row + spec, versions, update, pods
    JOB_EXEC = "job.exec"            # {"job", "command", "timeout"} -> {"results": {pod: result}}
    JOB_TRACE = "job.trace"          # {"job", "limit"} -> [event]
    POD_LIST = "pod.list"            # {"job"} -> [pod row]
    POD_SHOW = "pod.show"            # {"pod"} -> pod row + history
    POD_RECOVER = "pod.recover"      # {"pod"} -> {"pod", "status"}
    POD_TRACE = "pod.trace"          # {"pod", "limit"} -> [event]
    POD_LOGS = "pod.logs"            # {"pod", "stream", "tail", "offset"} -> {"data", "offset"}
    STATUS = "status"


JOB_STATES = ("PENDING", "DEPLOYING", "RUNNING", "UPDATING", "PAUSED", "STOPPING", "STOPPED", "FAILED",
              "COMPLETED")
LOG_STREAMS = ("stdout", "stderr")
MAX_TRACE = 100
MAX_EXEC_TIMEOUT = 600.0
MAX_EXEC_COMMAND = 4096


def want_str(body: Any, key: str) -> str:
    """A non-empty string field of a request body (InvalidInput naming the field otherwise)."""
    if not isinstance(body, dict):
        raise InvalidInput("expected a mapping", field="body")
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput("is required (a non-empty string)", field=key)
    return value


def want_opt_str(body: Any, key: str) -> str | None:
    """Like `want_str`, but an absent field is None."""
    if isinstance(body, dict) and body.get(key) is None:
        return None
    return want_str(body, key)


def want_int(body: dict[str, Any], key: str, *, low: int, high: int, default: int | None = None) -> int:
    value = body.get(key, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"expected an integer in [{low}, {high}]", field=key)
    return value


def want_seconds(body: dict[str, Any], key: str, *, default: float, high: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= high:
        raise InvalidInput(f"expected seconds in (0, {high:g}]", field=key)
    return float(value)


def want_spec(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise InvalidInput("expected a job spec mapping", field="spec")
    return body["spec"]  # type: ignore[no-any-return]


__all__ = ["AppMasterApi", "JOB_STATES", "LOG_STREAMS", "MAX_TRACE", "MAX_EXEC_TIMEOUT", "MAX_EXEC_COMMAND",
           "want_str", "want_opt_str", "want_int", "want_seconds", "want_spec"]
