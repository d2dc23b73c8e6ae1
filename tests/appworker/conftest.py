"""Fixtures: a work dir the service user can enter, and in-process workers torn down after each test."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from galaxy.appworker import Worker, WorkerSettings
from tests.appworker._helpers import FakeMaster, free_port, kill_group


def service_user() -> tuple[int, int]:
    """As root, run services as nobody (the worker drops privileges); otherwise as ourselves."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid
    return os.geteuid(), os.getegid()


@pytest.fixture
def work_root() -> Iterator[Path]:
    """A directory outside pytest's 0700 tmp tree, so a dropped-privilege service can reach it."""
    path = Path(tempfile.mkdtemp(prefix=f"galaxy-appworker-{uuid.uuid4().hex[:8]}-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_worker(work_root: Path) -> Iterator[Callable[..., tuple[Worker, FakeMaster]]]:
    made: list[tuple[Worker, FakeMaster]] = []

    def make(**overrides: Any) -> tuple[Worker, FakeMaster]:
        uid, gid = service_user()
        fields: dict[str, Any] = {
            "pod": f"galaxy-pod-{uuid.uuid4().hex[:8]}", "job": "web", "uid": uid, "gid": gid,
            "host_address": "127.0.0.1", "ports": {"http": free_port()},
            "work_dir": work_root / "work", "report_interval": 0.1, "settle_time": 0.3,
            "start_timeout": 15.0, "stop_grace": 2.0,
        }
        fields.update(overrides)
        fields["container_env"] = {"GALAXY_CONTAINER_ID": fields["pod"], "GALAXY_GROUP": fields["job"],
                                   **{f"GALAXY_PORT_{k.upper()}": str(v) for k, v in fields["ports"].items()}}
        master = FakeMaster()
        worker = Worker(WorkerSettings(**fields), master).start()
        made.append((worker, master))
        return worker, master

    yield make
    for worker, master in made:
        try:
            worker.close(timeout=20.0)
        finally:
            for pid in master.service_pids:
                kill_group(pid)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local http server (127.0.0.1, a free port) serving ``tmp_path/www``: (base URL, that dir)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
