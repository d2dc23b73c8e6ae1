"""Size-bounded, rotating log files fed from a child's pipe.

The worker owns the write end of every log, not the service: the service writes into a pipe and a
pump thread copies into ``<name>.log``, rotating to ``<name>.log.1 … .N`` at the size bound. So a
chatty or runaway service can use at most ``max_bytes × (keep + 1)`` of the work disk, and a reader
(``tail``) always finds the newest output in the same place.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class RotatingLog:
    """Append-only file at ``path``, rotated when it would pass ``max_bytes``; ``keep`` old files."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int, keep: int) -> None:
        if max_bytes < 1 or keep < 0:
            raise ValueError("max_bytes must be >= 1 and keep >= 0")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._size = 0

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted where the log goes must not redirect our writes.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            self._file = os.fdopen(fd, "ab", buffering=0)
            self._size = os.fstat(fd).st_size
        return self._file

    def write(self, data: bytes) -> None:
        """Append ``data``, splitting it across rotations so no file passes the bound."""
        with self._lock:
            view = memoryview(data)
            while view:
                out = self._open()
                room = self.max_bytes - self._size
                if room <= 0:
                    self._rotate()
                    continue
                part = view[:room]
                out.write(part)
                self._size += len(part)
                view = view[len(part):]

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            if self.path.exists():
                os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def files(self) -> list[Path]:
        """The current file and the kept old ones that exist, newest first."""
        names = [self.path] + [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.keep + 1)]
        return [p for p in names if p.exists()]

    def tail(self, limit: int = 2048) -> str:
        """The last ``limit`` bytes written (from the current file only), as text."""
        try:
            with open(self.path, "rb") as src:
                size = src.seek(0, os.SEEK_END)
                src.seek(max(0, size - limit))
                return src.read().decode("utf-8", "replace")
        except OSError:
            return ""


def pump(source: IO[bytes], sink: RotatingLog, name: str = "pump") -> threading.Thread:
    """Copy ``source`` into ``sink`` on a daemon thread until EOF; the thread closes ``source``."""

    def run() -> None:
        try:
            fd = source.fileno()
            while True:
                data = os.read(fd, CHUNK)
                if not data:
                    return
                try:
                    sink.write(data)
                except OSError as err:  # disk full: drop output rather than block the service
                    log.warning("cannot write %s: %s", sink.path, err)
        except OSError:
            return
        finally:
            source.close()

    thread = threading.Thread(target=run, name=f"galaxy-log-{name}", daemon=True)
    thread.start()
    return thread
