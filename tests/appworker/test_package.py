"""Packages fetched and unpacked by the package child as the service user: sha256, size limits,
ownership, and what a root worker's child may not read."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from galaxy.appworker import DeployError, ProgramPlan, Reaper, RunAs, Workspace, deploy
from galaxy.appworker.deploy import MARKER, fingerprint
from galaxy.appworker.exec import run_command
from galaxy.appworker.program import parse_data
from galaxy.appworker.settings import DEFAULT_PACKAGE_MAX_BYTES, WorkerSettings
from galaxy.errors import InvalidInput
from tests.appworker._helpers import make_package, program
from tests.appworker.conftest import service_user

NOBODY = 65534


def sha256_of(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("file://")).read_bytes()).hexdigest()


def tree(path: Path) -> list[Path]:
    return [path, *sorted(path.rglob("*"))]


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    reaper = Reaper(reap_orphans=False)
    yield reaper
    reaper.stop()


def workspace(work_root: Path, **kwargs: Any) -> Workspace:
    uid, gid = kwargs.pop("user", service_user())
    ws = Workspace(work_root / "work", uid, gid, **kwargs)
    ws.ensure()
    return ws


def test_a_right_sha256_passes_and_the_files_are_the_service_users(work_root: Path, reaper: Reaper) -> None:
    url = make_package(work_root, "web-1.tgz", {"bin/run.sh": "echo hi", "index.html": "one"})
    ws = workspace(work_root)
    vdir = ws.fresh_dir(ws.version_dir("1"))
    ws.fill(reaper, vdir, url, sha256_of(url))
    assert (vdir / "bin" / "run.sh").read_text() == "echo hi" and (vdir / "web-1.tgz").is_file()
    uid, gid = service_user()
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in tree(vdir)} == {(uid, gid)}
    assert (work_root / "work" / "versions").stat().st_uid == os.geteuid()  # the worker keeps versions/


def test_a_sha256_mismatch_refuses_before_unpacking(work_root: Path, reaper: Reaper) -> None:
    url = make_package(work_root, "web-1.tgz", {"index.html": "one"})
    ws = workspace(work_root)
    vdir = ws.fresh_dir(ws.version_dir("1"))
    with pytest.raises(DeployError) as err:
        ws.fill(reaper, vdir, url, "0" * 64)
    assert str(err.value) == (f"package {url}: sha256 mismatch: expected {'0' * 64}, got {sha256_of(url)}; "
                              "nothing unpacked")
    assert list(vdir.iterdir()) == []


def test_the_size_limit_trips_while_streaming(work_root: Path, reaper: Reaper) -> None:
    url = make_package(work_root, "big.tgz", {"noise.bin": os.urandom(8192).hex()})
    ws = workspace(work_root, package_max_bytes=4096)
    vdir = ws.fresh_dir(ws.version_dir("1"))
    with pytest.raises(DeployError, match=r"big.tgz: larger than 4096 bytes \(the size limit per package\)"):
        ws.fill(reaper, vdir, url)
    assert list(vdir.iterdir()) == []


def test_an_archive_that_unpacks_past_the_limit_is_refused_before_any_member(work_root: Path,
                                                                             reaper: Reaper) -> None:
    bomb = work_root / "bomb.tgz"
    with tarfile.open(bomb, "w:gz") as tar:   # 1 MiB of zeros: about 1 KiB compressed
        for name in ("a.bin", "b.bin"):
            info = tarfile.TarInfo(name)
            info.size = 1 << 20
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < 8192
    ws = workspace(work_root, package_max_bytes=8192)
    vdir = ws.fresh_dir(ws.version_dir("1"))
    with pytest.raises(DeployError, match="unpacks to more than 32768 bytes"):
        ws.fill(reaper, vdir, f"file://{bomb}")
    assert [p.name for p in vdir.iterdir()] == ["bomb.tgz"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root worker with another service user")
@pytest.mark.parametrize("secret", ["root-only file", "/etc/shadow"])
def test_a_root_workers_child_cannot_read_what_the_user_cannot(work_root: Path, reaper: Reaper,
                                                               secret: str) -> None:
    if secret == "/etc/shadow":
        path = Path(secret)
        if not path.exists():
            pytest.skip("no /etc/shadow here")
    else:
        path = work_root / "secret.tgz"
        make_package(work_root, "secret.tgz", {"key": "the agent's secret key"})
        path.chmod(0o600)
        assert path.stat().st_uid == 0
    ws = workspace(work_root, user=(NOBODY, NOBODY))
    vdir = ws.fresh_dir(ws.version_dir("1"))
    assert vdir.stat().st_uid == NOBODY
    with pytest.raises(DeployError, match=f"package file://{path}: cannot read it: Permission denied"):
        ws.fill(reaper, vdir, f"file://{path}")
    assert list(vdir.iterdir()) == []


def _runnable_by_nobody(path: str) -> bool:
    return os.path.exists(path) and subprocess.run(
        [path, "-I", "-S", "-c", "pass"], user=NOBODY, group=NOBODY, extra_groups=[], check=False,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or not _runnable_by_nobody("/usr/bin/python3"),
                    reason="needs a root worker and an interpreter the service user can run")
def test_the_child_is_started_as_the_user_when_the_user_can_run_the_interpreter(
        work_root: Path, reaper: Reaper, monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual path in a container: Popen(user=) before the exec, no drop inside the child. (Here
    the venv's interpreter is under a 0700 /root, so the other tests take the fallback: started as
    the worker, dropped in the child.)"""
    calls: list[RunAs | None] = []

    def recording(*args: Any, run_as: RunAs | None, **kwargs: Any) -> Any:
        calls.append(run_as)
        return run_command(*args, run_as=run_as, **kwargs)

    monkeypatch.setattr(deploy, "INTERPRETER", "/usr/bin/python3")
    monkeypatch.setattr(deploy, "run_command", recording)
    plain = work_root / "tool.sh"   # no archive: the system Python's tarfile may predate the data filter
    plain.write_text("#!/bin/sh\n")
    secret = work_root / "secret"
    secret.write_text("key")
    secret.chmod(0o600)
    ws = workspace(work_root, user=(NOBODY, NOBODY))
    vdir = ws.fresh_dir(ws.version_dir("1"))
    ws.fill(reaper, vdir, f"file://{plain}")
    assert (vdir / "tool.sh").stat().st_uid == NOBODY
    with pytest.raises(DeployError, match="cannot read it: Permission denied"):
        ws.fill(reaper, ws.fresh_dir(ws.version_dir("2")), f"file://{secret}")
    assert calls == [RunAs(NOBODY, NOBODY)] * 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root worker with another service user")
def test_the_child_writes_with_the_users_rights_only(work_root: Path, reaper: Reaper) -> None:
    """A root child would write into a root-owned dir; the user's child cannot."""
    url = make_package(work_root, "ok.tgz", {"index.html": "x"})
    ws = workspace(work_root, user=(NOBODY, NOBODY))
    guarded = ws.version_dir("guarded")
    guarded.mkdir(mode=0o755)  # root's, not made by fresh_dir
    with pytest.raises(DeployError, match="ok.tgz: cannot store it: Permission denied"):
        ws.fill(reaper, guarded, url)
    assert list(guarded.iterdir()) == []


def test_an_http_package_with_its_sha256(http_root: tuple[str, Path], work_root: Path, reaper: Reaper) -> None:
    base, root = http_root
    sha = sha256_of(make_package(root, "web-3.tgz", {"index.html": "three"}))
    ws = workspace(work_root)
    vdir = ws.fresh_dir(ws.version_dir("3"))
    ws.fill(reaper, vdir, f"{base}/web-3.tgz", sha)
    assert (vdir / "index.html").read_text() == "three"
    assert (vdir / "index.html").stat().st_uid == service_user()[0]
    vdir = ws.fresh_dir(ws.version_dir("3"))
    with pytest.raises(DeployError, match="sha256 mismatch"):
        ws.fill(reaper, vdir, f"{base}/web-3.tgz", "f" * 64)
    assert list(vdir.iterdir()) == []
    with pytest.raises(DeployError, match=r"web-4.tgz: cannot fetch it: HTTP Error 404"):
        ws.fill(reaper, vdir, f"{base}/web-4.tgz")


def test_a_redirect_to_another_origin_is_refused(http_root: tuple[str, Path], work_root: Path,
                                                 reaper: Reaper) -> None:
    """The pool's policy allowed the package's origin; a redirect elsewhere (another port here) is not
    followed."""
    base, root = http_root
    make_package(root, "web-5.tgz", {"index.html": "five"})

    class Redirect(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(302)
            self.send_header("Location", f"{base}/web-5.tgz")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        ws = workspace(work_root)
        vdir = ws.fresh_dir(ws.version_dir("5"))
        with pytest.raises(DeployError, match="redirect to another origin refused"):
            ws.fill(reaper, vdir, f"http://127.0.0.1:{server.server_address[1]}/web-5.tgz")
        assert list(vdir.iterdir()) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_device_is_no_package(work_root: Path, reaper: Reaper) -> None:
    ws = workspace(work_root)
    vdir = ws.fresh_dir(ws.version_dir("1"))
    with pytest.raises(DeployError, match="file:///dev/zero: cannot read it: not a regular file"):
        ws.fill(reaper, vdir, "file:///dev/zero")


def test_no_package_no_child(work_root: Path) -> None:
    class NoSpawn:
        def spawn(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("a child was started for no package")

    ws = workspace(work_root)
    ws.fill(NoSpawn(), ws.fresh_dir(ws.version_dir("1")), None)  # type: ignore[arg-type]


def test_planted_links_in_a_version_dir_are_not_followed(work_root: Path) -> None:
    ws = workspace(work_root)
    prog = program("1", "sleep 1")
    vdir = ws.fresh_dir(ws.version_dir("1"))
    outside = work_root / "outside.txt"
    outside.write_text(fingerprint(prog))
    (vdir / MARKER).symlink_to(outside)
    assert not ws.is_deployed("1", prog)              # a link is not a marker
    ws.mark_deployed("1", prog)
    assert outside.read_text() == fingerprint(prog) and not (vdir / MARKER).is_symlink()
    assert ws.is_deployed("1", prog)
    outside_dir = work_root / "keep"
    outside_dir.mkdir()
    (outside_dir / "file").write_text("keep")
    link = ws.version_dir("3")
    link.symlink_to(outside_dir)
    ws.fresh_dir(link)                                 # the link is replaced, its target kept
    assert link.is_dir() and not link.is_symlink() and (outside_dir / "file").read_text() == "keep"


def test_a_deploy_with_a_wrong_sha256_is_deploy_failed(make_worker: Any, work_root: Path) -> None:
    _worker, master = make_worker()
    url = make_package(work_root, "web-1.tgz", {"index.html": "one"})
    master.send("deploy", version="1", program=program("1", "sleep 1", package=url, sha256="a" * 64))
    report = master.wait_for(lambda r: r.status == "DEPLOY_FAILED", what="deploy failure")
    assert report.message.startswith(f"package {url}: sha256 mismatch: expected {'a' * 64}, got ")


def test_sha256_is_parsed_for_the_package_and_the_data() -> None:
    sha = "0123456789abcdef" * 4
    plan = ProgramPlan.parse("1", {"start": "x", "package": "file:///p.tgz", "sha256": sha,
                                   "data": {"package": "file:///d.tgz", "sha256": sha}})
    assert plan.sha256 == sha and plan.data is not None and plan.data.sha256 == sha
    plain = ProgramPlan.parse("1", {"start": "x", "package": "file:///p.tgz", "data": {"package": "file:///d"}})
    assert plain.sha256 is None and plain.data is not None and plain.data.sha256 is None
    assert parse_data({"package": "file:///d.tgz", "sha256": sha}, "d1").sha256 == sha
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sha256": sha.upper()}, "program.sha256"), ({"sha256": sha[:-1]}, "program.sha256"),
        ({"sha256": 7}, "program.sha256"),
        ({"data": {"package": "file:///d", "sha256": "sha256:" + sha}}, "program.data.sha256")]
    for body, field in cases:
        with pytest.raises(InvalidInput) as err:
            ProgramPlan.parse("1", {"start": "x", "package": "file:///p.tgz", **body})
        assert err.value.field == field


def test_the_package_size_limit_setting() -> None:
    base = {"GALAXY_CONTAINER_ID": "pod-1", "GALAXY_GROUP": "web", "GALAXY_UID": "1000", "GALAXY_GID": "1000"}
    assert WorkerSettings.from_environ(base, require_master=False).package_max_bytes == DEFAULT_PACKAGE_MAX_BYTES
    env = {**base, "GALAXY_PACKAGE_MAX_BYTES": "1048576"}
    assert WorkerSettings.from_environ(env, require_master=False).package_max_bytes == 1 << 20
    with pytest.raises(InvalidInput) as err:
        WorkerSettings.from_environ({**base, "GALAXY_PACKAGE_MAX_BYTES": "12"}, require_master=False)
    assert err.value.field == "GALAXY_PACKAGE_MAX_BYTES"
