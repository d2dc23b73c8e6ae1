"""Packages onto the work disk: fetch, unpack safely, run the job's deploy command, keep a few versions.

Layout under the work dir (``/galaxy/work`` in a container)::

    versions/<V>/            the package file, its unpacked contents, what `deploy` made (service user's)
    versions/<V>/.galaxy-deployed   marker: the program's fingerprint, written last, so a half-done
                             deploy is redone and a repeated `deploy V` of the same program is instant
    data/<D>/                data packages (reload)
    log/                     the rotating logs (the worker's, not the service's to replace)

The worker may be root while it unpacks, so everything from the package is treated as hostile: members
that escape the target (absolute paths, ``..``, links pointing out, devices) are refused, and the
result is handed to the service user before its deploy command runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import urllib.parse
from pathlib import Path, PurePosixPath

from galaxy.appworker.exec import run_command
from galaxy.appworker.program import DataPlan, ProgramPlan
from galaxy.appworker.reaper import Reaper, RunAs
from galaxy.errors import GalaxyError, InvalidInput

MARKER = ".galaxy-deployed"
FETCH_TIMEOUT = 120.0
COMMAND_TIMEOUT = 600.0


class DeployError(GalaxyError):
    """A step of a deploy failed; the message is the reason the pod reports."""

    code = "deploy"


def fetch(url: str, dest_dir: Path, *, timeout: float = FETCH_TIMEOUT) -> Path:
    """Copy the package at ``url`` (``file://``, an absolute path, or ``http(s)://``) into ``dest_dir``."""
    parsed = urllib.parse.urlparse(url)
    name = PurePosixPath(urllib.parse.unquote(parsed.path)).name or "package"
    if name in (".", "..") or name == MARKER:
        name = "package"
    target = dest_dir / name
    if parsed.scheme in ("", "file"):
        source = Path(urllib.parse.unquote(parsed.path))
        if not source.is_absolute():
            raise DeployError(f"package {url!r}: a file package needs an absolute path")
        try:
            shutil.copyfile(source, target)
        except OSError as err:
            raise DeployError(f"cannot read package {url}: {err.strerror or err}") from None
    elif parsed.scheme in ("http", "https"):
        # Imported here, not at the top: http.client + email cost every worker ~15 ms of start-up,
        # and most programs have no http package.
        from urllib.error import URLError
        from urllib.request import urlopen

        try:
            with urlopen(url, timeout=timeout) as reply, open(target, "wb") as out:
                shutil.copyfileobj(reply, out, 1 << 20)
        except (URLError, OSError, ValueError) as err:
            raise DeployError(f"cannot fetch package {url}: {getattr(err, 'reason', err)}") from None
    else:
        raise DeployError(f"package {url!r}: unsupported scheme {parsed.scheme!r} (file, http, https)")
    return target


def unpack(archive: Path, dest: Path) -> bool:
    """Unpack a tar (any compression) or zip archive into ``dest``, judged by content; False if the
    file is no archive (it stays as it is: a single binary, a script).

    tarfile and zipfile are imported only here: most programs ship no package, and every worker on
    a host pays its imports in CPU time, under its container's CPU quota."""
    import tarfile
    import zipfile

    if zipfile.is_zipfile(archive):
        _unzip(archive, dest)
        return True
    if tarfile.is_tarfile(archive):
        _untar(archive, dest)
        return True
    return False


def _untar(archive: Path, dest: Path) -> None:
    import tarfile

    root = dest.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member.name, root)
                if member.issym() or member.islnk():
                    link = member.linkname
                    base = (root / member.name).parent if member.issym() else root
                    _check_inside((base / link) if not os.path.isabs(link) else Path(link), root, member.name)
                elif not (member.isfile() or member.isdir()):
                    raise DeployError(f"package member {member.name!r}: only files, dirs and links allowed")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise DeployError(f"cannot unpack {archive.name}: {err}") from None


def _unzip(archive: Path, dest: Path) -> None:
    import zipfile

    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info.filename, root)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise DeployError(f"package member {info.filename!r}: links in zip files are refused")
            for info in zf.infolist():
                zf.extract(info, dest)
                mode = (info.external_attr >> 16) & 0o755
                if mode and not info.is_dir():
                    os.chmod(dest / info.filename, mode | 0o600)
    except (zipfile.BadZipFile, OSError) as err:
        raise DeployError(f"cannot unpack {archive.name}: {err}") from None


def _check_member(name: str, root: Path) -> None:
    if not name or name.startswith("/") or "\0" in name:
        raise DeployError(f"package member {name!r} escapes the version directory")
    _check_inside(root / name, root, name)


def _check_inside(path: Path, root: Path, name: str) -> None:
    resolved = Path(os.path.normpath(path))
    if resolved != root and root not in resolved.parents:
        raise DeployError(f"package member {name!r} escapes the version directory")


def fingerprint(program: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(program, sort_keys=True, default=str).encode()).hexdigest()


class Workspace:
    """The work dir: where versions, data and logs live, and who owns them."""

    def __init__(self, root: Path, uid: int, gid: int, keep_versions: int = 3) -> None:
        self.root = root
        self.uid = uid
        self.gid = gid
        self.keep_versions = max(2, keep_versions)

    def ensure(self) -> None:
        """Make versions/, data/ and log/ as real directories owned by the worker (not links the
        service could have planted)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name in ("versions", "data", "log"):
            self._real_dir(self.root / name)

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def version_dir(self, version: str) -> Path:
        return self.root / "versions" / version

    def data_dir(self, version: str) -> Path:
        return self.root / "data" / version

    def is_deployed(self, version: str, program: dict[str, object]) -> bool:
        marker = self.version_dir(version) / MARKER
        try:
            return marker.read_text() == fingerprint(program)
        except OSError:
            return False

    def fresh_dir(self, path: Path) -> Path:
        """An empty directory at ``path`` (whatever was there is removed), owned by the service user."""
        self._real_dir(path.parent)
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        path.mkdir(mode=0o755)
        return path

    def fill(self, path: Path, package: str | None) -> None:
        """Fetch ``package`` into ``path``, unpack it, and give the tree to the service user."""
        if package:
            archive = fetch(package, path)
            unpack(archive, path)
        self.chown_tree(path)

    def mark_deployed(self, version: str, program: dict[str, object]) -> None:
        marker = self.version_dir(version) / MARKER
        marker.unlink(missing_ok=True)
        marker.write_text(fingerprint(program))

    def prune(self, keep: set[str]) -> list[str]:
        """Remove the oldest version dirs beyond ``keep_versions``, never one named in ``keep``."""
        base = self.root / "versions"
        dirs = sorted((p for p in base.iterdir() if p.is_dir() and not p.is_symlink()),
                      key=lambda p: p.stat().st_mtime, reverse=True)
        removed: list[str] = []
        others_allowed = max(0, self.keep_versions - len(keep))
        for path in dirs:
            if path.name in keep:
                continue
            if others_allowed > 0:
                others_allowed -= 1
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
        return removed

    def chown_tree(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        os.lchown(path, self.uid, self.gid)
        for top, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(top, name), self.uid, self.gid)

    def _real_dir(self, path: Path) -> None:
        if path.is_symlink():
            raise InvalidInput(f"{path} is a symbolic link; refusing to use it", field="work_dir")
        path.mkdir(mode=0o755, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, 0, 0)


def deploy_version(ws: Workspace, reaper: Reaper, run_as: RunAs, plan: ProgramPlan, program: dict[str, object],
                   env: dict[str, str], running: str | None) -> None:
    """Blocking: make ``versions/<V>`` ready to start (a no-op if this exact program is there)."""
    if ws.is_deployed(plan.version, program):
        return
    vdir = ws.fresh_dir(ws.version_dir(plan.version))
    ws.fill(vdir, plan.package)
    if plan.data is not None:
        ws.fill(ws.fresh_dir(ws.data_dir(plan.version)), plan.data.package)
    if plan.deploy:
        result = run_command(reaper, plan.deploy, run_as=run_as, cwd=vdir, env=env, timeout=COMMAND_TIMEOUT)
        if not result.ok:
            raise DeployError(result.describe("deploy command", COMMAND_TIMEOUT))
    ws.mark_deployed(plan.version, program)
    ws.prune({v for v in (plan.version, running) if v})


def reload_data(ws: Workspace, reaper: Reaper, run_as: RunAs, data: DataPlan, env: dict[str, str],
                cwd: Path | None) -> None:
    """Blocking: fetch the data package into ``data/<D>`` and run its reload command (the service
    keeps running; the command tells it to re-read, e.g. ``kill -HUP $GALAXY_SERVICE_PID``)."""
    assert data.version is not None
    ddir = ws.fresh_dir(ws.data_dir(data.version))
    ws.fill(ddir, data.package)
    if data.reload:
        env = dict(env, GALAXY_DATA_DIR=str(ddir), GALAXY_DATA_VERSION=data.version)
        result = run_command(reaper, data.reload, run_as=run_as, cwd=cwd or ddir, env=env, timeout=COMMAND_TIMEOUT)
        if not result.ok:
            raise DeployError(result.describe("reload command", COMMAND_TIMEOUT))
