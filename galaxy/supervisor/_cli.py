"""`python -m galaxy.supervisor VERB --config FILE [PROGRAM]`: the supervisor and its remote control.

Every verb but `run` and `status` prints one JSON line whose ``changed`` tells a deployment tool
(Ansible's ``changed_when``) whether anything was started, restarted or stopped, and exits non-zero
with the reason on stderr when the program did not come up healthy.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from galaxy.errors import GalaxyError

VERBS = {
    "run": "supervise in the foreground (what `start` launches)",
    "start": "start the supervisor detached unless it runs",
    "ensure": "run PROGRAM with its current definition: start it, or restart it if it changed; wait healthy",
    "restart": "restart PROGRAM now and wait until it is healthy",
    "signal": "send PROGRAM a signal (default HUP: the daemons re-read their trusted keys)",
    "stop": "stop PROGRAM, or without one the supervisor and everything it runs",
    "status": "print the state of every program as JSON",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m galaxy.supervisor",
                                     description="Galaxy's own supervisor, for hosts without systemd.")
    parser.add_argument("verb", choices=sorted(VERBS), help="; ".join(f"{k}: {v}" for k, v in VERBS.items()))
    parser.add_argument("program", nargs="?", help="a program name from the config")
    parser.add_argument("--config", "-c", required=True, help="the supervisor's YAML config file")
    parser.add_argument("--signal", default="HUP", help="for `signal`: the signal name")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for an answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "run":
            from galaxy.supervisor._supervisor import run_foreground

            return run_foreground(args.config)
        result = _dispatch(args)
    except GalaxyError as err:
        print(f"galaxy-supervisor: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from galaxy.supervisor._control import Control

    control = Control(args.config)
    needs_program = args.verb in ("ensure", "restart", "signal")
    if needs_program and not args.program:
        raise GalaxyError(f"`{args.verb}` needs a PROGRAM", field="program")
    if args.verb == "start":
        return {"changed": control.start_supervisor(args.timeout)}
    if args.verb == "status":
        return {"running": control.supervisor_pid() is not None, **control.state()}
    if args.verb == "ensure":
        return control.ensure(args.program, args.timeout)
    if args.verb == "restart":
        return control.restart(args.program, args.timeout)
    if args.verb == "signal":
        name = args.signal.upper()
        try:
            sig = int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
        except KeyError:
            raise GalaxyError(f"unknown signal {args.signal!r}", field="signal") from None
        if control.supervisor_pid() is None:
            return {"changed": False}
        return control.request("signal", args.program, sig=sig, timeout=args.timeout)
    if args.program:
        if control.supervisor_pid() is None:
            return {"changed": False}
        return control.request("stop", args.program, timeout=args.timeout)
    return {"changed": control.shutdown(args.timeout)}
