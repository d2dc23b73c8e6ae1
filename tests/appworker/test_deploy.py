"""Fetching and unpacking packages: formats by content, hostile members refused, versions pruned."""

from __future__ import annotations

import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from galaxy.appworker import DeployError, Workspace, fetch, unpack
from tests.appworker._helpers import make_package


def _tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tar:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def test_tar_gz_unpacks_by_content_whatever_its_name(tmp_path: Path) -> None:
    url = make_package(tmp_path, "pkg.bin", {"bin/run.sh": "echo hi", "index.html": "hi"})
    dest = tmp_path / "out"
    dest.mkdir()
    archive = fetch(url, dest)
    assert archive == dest / "pkg.bin" and unpack(archive, dest)
    assert (dest / "bin" / "run.sh").read_text() == "echo hi"


def test_zip_unpacks_and_a_plain_file_stays_as_it_is(tmp_path: Path) -> None:
    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app/main.py", "print(1)")
    dest = tmp_path / "out"
    dest.mkdir()
    assert unpack(archive, dest) and (dest / "app" / "main.py").read_text() == "print(1)"
    plain = tmp_path / "tool"
    plain.write_text("#!/bin/sh\n")
    assert unpack(plain, dest) is False


@pytest.mark.parametrize("name, kind, link", [
    ("../outside.txt", tarfile.REGTYPE, ""),
    ("/etc/galaxy-evil", tarfile.REGTYPE, ""),
    ("link", tarfile.SYMTYPE, "../../etc/passwd"),
    ("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
    ("dev", tarfile.CHRTYPE, ""),
])
def test_members_escaping_the_directory_are_refused(tmp_path: Path, name: str, kind: bytes, link: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    archive = _tar_with(tmp_path / "evil.tar", info, b"x" if kind == tarfile.REGTYPE else b"")
    dest = tmp_path / "deep" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(DeployError):
        unpack(archive, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "deep" / "outside.txt").exists()


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", "x")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DeployError, match="escapes"):
        unpack(archive, dest)
    assert not (tmp_path / "evil.txt").exists()


def test_http_fetch_and_a_clear_error_for_a_missing_package(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_root
    make_package(root, "web-3.tgz", {"index.html": "three"})
    dest = tmp_path / "v3"
    dest.mkdir()
    assert unpack(fetch(f"{base}/web-3.tgz", dest), dest)
    assert (dest / "index.html").read_text() == "three"
    with pytest.raises(DeployError, match="missing.tgz: cannot fetch it: HTTP Error 404"):
        fetch(f"{base}/missing.tgz", dest)
    with pytest.raises(DeployError, match="missing.tgz: cannot read it: No such file"):
        fetch(f"file://{tmp_path}/missing.tgz", dest)
    with pytest.raises(DeployError, match="unsupported scheme"):
        fetch("ftp://example.invalid/x.tgz", dest)


def test_prune_keeps_the_newest_versions_and_the_ones_in_use(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "work", os.getuid(), os.getgid(), keep_versions=3)
    ws.ensure()
    for index, version in enumerate(["a", "b", "c", "d", "e"]):
        path = ws.fresh_dir(ws.version_dir(version))
        os.utime(path, (time.time() - 100 + index, time.time() - 100 + index))
    removed = ws.prune({"e", "a"})  # e: the new one, a: the one still running
    assert sorted(removed) == ["b", "c"]
    assert sorted(p.name for p in (tmp_path / "work" / "versions").iterdir()) == ["a", "d", "e"]


def test_a_planted_link_for_the_versions_dir_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "versions").symlink_to(tmp_path)
    with pytest.raises(Exception, match="symbolic link"):
        Workspace(work, os.getuid(), os.getgid()).ensure()
