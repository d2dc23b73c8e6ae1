"""Health probes of the service, run on their own thread so a slow probe never delays a report.

``{tcp: <port name>}`` is healthy when 127.0.0.1:$GALAXY_PORT_<NAME> accepts a connection;
``{command: ...}`` when the command exits 0 within the timeout. Without a health check a service is
healthy once it has stayed alive for the settle time. The monitor posts a result only when it differs
from the last one (plus the first), so a steady service costs the state machine nothing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from galaxy.appworker.program import HealthPlan

Probe = Callable[[], tuple[bool, str]]


def tcp_probe(port: int, timeout: float, host: str = "127.0.0.1") -> Probe:
    def probe() -> tuple[bool, str]:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True, ""
        except OSError as err:
            return False, f"tcp {host}:{port}: {err.strerror or err}"

    return probe


class HealthMonitor:
    """Calls ``probe`` every ``interval`` seconds; ``report(healthy, detail)`` on every change."""

    def __init__(self, probe: Probe, interval: float, report: Callable[[bool, str], None],
                 *, first_delay: float = 0.0, fast_until_healthy: float = 0.2) -> None:
        self._probe = probe
        self._interval = interval
        self._report = report
        self._first_delay = first_delay
        self._fast = min(fast_until_healthy, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="galaxy-health", daemon=True)

    def start(self) -> HealthMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self._stop.wait(self._first_delay):
            return
        last: bool | None = None
        ever_healthy = False
        while not self._stop.is_set():
            try:
                healthy, detail = self._probe()
            except Exception as err:  # a probe's failure is an unhealthy answer, not a dead monitor
                healthy, detail = False, f"probe failed: {err}"
            if self._stop.is_set():
                return
            if healthy != last:
                self._report(healthy, detail)
                last = healthy
            ever_healthy = ever_healthy or healthy
            # Until the first success, probe often: a start should turn RUNNING as soon as it can.
            self._stop.wait(self._interval if ever_healthy else self._fast)


def describe(plan: HealthPlan | None) -> str:
    if plan is None:
        return "alive after the settle time"
    return f"tcp port {plan.tcp}" if plan.tcp else f"command {plan.command!r}"
