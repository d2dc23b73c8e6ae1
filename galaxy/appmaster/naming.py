"""Keeps `naming/<job>/<pod>` current from the pod table, off the report path.

Reports are answered in the mesh I/O thread, which must never wait on ZooKeeper; so changes are
queued here, coalesced per pod (only the latest record of a pod is written), and written by one
thread. Records are JSON through `galaxy.coord.Naming`, readable by any ZooKeeper client.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from galaxy.coord import Naming

log = logging.getLogger(__name__)

_REMOVE = object()


class NamingPublisher:
    def __init__(self, naming: Naming) -> None:
        self._naming = naming
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, str], Any] = {}     # (job, pod) -> record | _REMOVE
        self._jobs_gone: set[str] = set()
        self._stop = False
        self.published = 0
        self._thread = threading.Thread(target=self._run, name="appmaster-naming", daemon=True)
        self._thread.start()

    def publish(self, job: str, pod: str, record: dict[str, Any]) -> None:
        with self._cond:
            self._pending[(job, pod)] = record
            self._cond.notify()

    def remove(self, job: str, pod: str) -> None:
        with self._cond:
            self._pending[(job, pod)] = _REMOVE
            self._cond.notify()

    def remove_job(self, job: str) -> None:
        with self._cond:
            for key in [k for k in self._pending if k[0] == job]:
                del self._pending[key]
            self._jobs_gone.add(job)
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._jobs_gone

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._jobs_gone and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                jobs_gone, self._jobs_gone = self._jobs_gone, set()
                pending, self._pending = self._pending, {}
            try:
                for job in jobs_gone:
                    self._naming.remove_job(job)
                for (job, pod), record in pending.items():
                    if record is _REMOVE:
                        self._naming.remove(job, pod)
                    else:
                        self._naming.publish(job, pod, record)
                        self.published += 1
            except Exception as err:  # ZooKeeper away: put back what is not newer, retry shortly
                log.warning("naming update failed, retrying: %s", err)
                with self._cond:
                    self._jobs_gone |= jobs_gone
                    for key, record in pending.items():
                        self._pending.setdefault(key, record)
                    self._cond.wait(0.5)
