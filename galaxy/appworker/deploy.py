"""Packages onto the work disk: fetch, unpack safely, run the job's deploy command, keep a few versions.

Layout under the work dir (``/galaxy/work`` in a container)::

    versions/<V>/            the package file, its unpacked contents, what `deploy` made (service user's)
    versions/<V>/.galaxy-deployed   marker: the program's fingerprint, written last, so a half-done
                             deploy is redone and a repeated `deploy V` of the same program is instant
    data/<D>/                data packages (reload)
    log/                     the rotating logs (the worker's, not the service's to replace)

The worker may be root, so it never reads a package itself: it makes ``versions/<V>`` (or
``data/<D>``) empty and the service user's, and a child that runs as that user fetches, checks and
unpacks the package there (``galaxy/appworker/package.py``). What the worker itself does in a
directory the user owns (remove it, write and read the marker) goes through directory file
descriptors and ``O_NOFOLLOW``, so a link the service plants cannot aim it elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import sys
from pathlib import Path

from galaxy.appworker import package as _package
from galaxy.appworker.exec import run_command
from galaxy.appworker.program import DataPlan, ProgramPlan
from galaxy.appworker.reaper import Reaper, RunAs
from galaxy.appworker.settings import DEFAULT_PACKAGE_MAX_BYTES, SYSTEM_PATH
from galaxy.errors import GalaxyError, InvalidInput

MARKER = _package.MARKER
FETCH_TIMEOUT = _package.FETCH_TIMEOUT
COMMAND_TIMEOUT = 600.0
PACKAGE_CHILD = Path(_package.__file__)
INTERPRETER = sys.executable or "python3"
CANNOT_EXECUTE = 126  # sh: the command was found but could not be executed
# What the package child sees of the worker's environment: how to reach the network, nothing else.
CHILD_ENV = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
             "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class DeployError(GalaxyError):
    """A step of a deploy failed; the message is the reason the pod reports."""

    code = "deploy"


def fetch(url: str, dest_dir: Path, *, sha256: str | None = None, max_bytes: int = DEFAULT_PACKAGE_MAX_BYTES,
          timeout: float = FETCH_TIMEOUT) -> Path:
    """Copy the package at ``url`` into ``dest_dir``, in this process and with its rights (for tests
    and tools: the worker runs the same code in the package child, as the service user)."""
    try:
        return _package.fetch(url, dest_dir, max_bytes=max_bytes, sha256=sha256, timeout=timeout)
    except _package.PackageError as err:
        raise DeployError(f"package {url}: {err}") from None


def unpack(archive: Path, dest: Path, *, max_bytes: int = DEFAULT_PACKAGE_MAX_BYTES * _package.UNPACK_FACTOR
           ) -> bool:
    """Unpack a tar (any compression) or zip archive into ``dest``, judged by content; False if it is
    no archive. In this process, like :func:`fetch`."""
    try:
        return _package.unpack(archive, dest, max_bytes=max_bytes)
    except _package.PackageError as err:
        raise DeployError(f"package {archive.name}: {err}") from None


def fingerprint(program: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(program, sort_keys=True, default=str).encode()).hexdigest()


class Workspace:
    """The work dir: where versions, data and logs live, and who owns them.

    ``versions/``, ``data/`` and ``log/`` are the worker's; each ``versions/<V>`` and ``data/<D>`` is
    the service user's, filled by the package child with the user's rights."""

    def __init__(self, root: Path, uid: int, gid: int, keep_versions: int = 3, *,
                 package_max_bytes: int = DEFAULT_PACKAGE_MAX_BYTES) -> None:
        self.root = root
        self.uid = uid
        self.gid = gid
        self.keep_versions = max(2, keep_versions)
        self.package_max_bytes = package_max_bytes

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
        """The marker says this exact program. Read without following links and at most a line of it:
        the directory is the user's, who could plant a link to a FIFO or /dev/zero."""
        want = fingerprint(program)
        try:
            fd = _open_under(self.root, "versions", version, MARKER,
                             flags=os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, len(want) + 1) == want.encode()
        except OSError:
            return False
        finally:
            os.close(fd)

    def fresh_dir(self, path: Path) -> Path:
        """An empty directory at ``path`` (``versions/<V>`` or ``data/<D>``; whatever was there is
        removed), owned by the service user. Worked on through the parent's descriptor, so a link
        planted in the path cannot turn the removal or the chown onto another directory."""
        if path.parent.parent != self.root:
            raise ValueError(f"{path} is not a version or data dir of {self.root}")
        base = self._base(path.parent.name)
        try:
            _remove(base, path.name)
            os.mkdir(path.name, 0o755, dir_fd=base)
            if os.geteuid() == 0:
                os.chown(path.name, self.uid, self.gid, dir_fd=base, follow_symlinks=False)
        finally:
            os.close(base)
        return path

    def fill(self, reaper: Reaper, path: Path, package: str | None, sha256: str | None = None) -> None:
        """Fetch ``package`` into ``path`` (made by :meth:`fresh_dir`), check and unpack it, all in the
        package child (``galaxy/appworker/package.py``) running as the service user. No package, no
        child: a Python start is paid only when there is something to fetch.

        The child is started as the user, as every child is (``RunAs``: the uid change happens before
        the exec, with PID 1's capabilities). If the user cannot execute the interpreter (a pyenv
        under a 0700 /root: ``sh`` says 126), it is started as the worker instead and drops to the
        user itself before it reads the URL. That needs CAP_SETUID after an exec, which a confined
        container does not give (SECBIT_NOROOT), but there the interpreter's mounts are reachable."""
        if not package:
            return
        if "\0" in package:
            raise DeployError(f"package {package!r}: a NUL byte in the URL")
        argv = [INTERPRETER, "-I", "-S", str(PACKAGE_CHILD), str(self.uid), str(self.gid), package, str(path),
                sha256 or "-", str(self.package_max_bytes)]
        command = "exec " + shlex.join(argv)
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", **{k: os.environ[k] for k in CHILD_ENV if k in os.environ}}
        try:
            result = run_command(reaper, command, run_as=RunAs(self.uid, self.gid), cwd="/", env=env,
                                 timeout=COMMAND_TIMEOUT)
            if result.exit_code == CANNOT_EXECUTE and os.geteuid() == 0:
                result = run_command(reaper, command, run_as=None, cwd="/", env=env, timeout=COMMAND_TIMEOUT)
        except GalaxyError as err:  # e.g. an unprivileged worker asked to fetch as another uid
            raise DeployError(f"package {package}: {err}") from None
        if result.ok:
            return
        lines = result.stderr.strip().splitlines()
        if result.exit_code == _package.EXIT_REFUSED and lines:
            raise DeployError(f"package {package}: {lines[-1]}")
        raise DeployError(f"package {package}: {result.describe('the package child', COMMAND_TIMEOUT)}")

    def mark_deployed(self, version: str, program: dict[str, object]) -> None:
        """Write the marker: a new file (never an existing one, nor a link) renamed over the old."""
        vdir = _open_under(self.root, "versions", version)
        temp = MARKER + ".new"
        try:
            _remove(vdir, temp)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=vdir)
            with open(fd, "w") as out:
                out.write(fingerprint(program))
            os.replace(temp, MARKER, src_dir_fd=vdir, dst_dir_fd=vdir)
        finally:
            os.close(vdir)

    def prune(self, keep: set[str]) -> list[str]:
        """Remove the oldest version dirs beyond ``keep_versions``, never one named in ``keep``."""
        base = self._base("versions")
        try:
            with os.scandir(base) as entries:
                dirs = sorted(((e.stat(follow_symlinks=False).st_mtime, e.name) for e in entries
                               if e.is_dir(follow_symlinks=False)), reverse=True)
            removed: list[str] = []
            others_allowed = max(0, self.keep_versions - len(keep))
            for _mtime, name in dirs:
                if name in keep:
                    continue
                if others_allowed > 0:
                    others_allowed -= 1
                    continue
                shutil.rmtree(name, ignore_errors=True, dir_fd=base)
                removed.append(name)
            return removed
        finally:
            os.close(base)

    def _base(self, name: str) -> int:
        """A descriptor of versions/ or data/, made if missing, reached without following a link and
        refused unless it is the worker's."""
        if name not in ("versions", "data"):
            raise ValueError(f"{name!r} is neither versions nor data")
        parent = self.root / name
        self._real_dir(parent)
        try:
            fd = _open_under(self.root, name)
        except OSError as err:
            raise InvalidInput(f"{parent}: {err.strerror or err}; refusing to use it", field="work_dir") from None
        if os.fstat(fd).st_uid != os.geteuid():
            os.close(fd)
            raise InvalidInput(f"{parent} is not the worker's; refusing to use it", field="work_dir")
        return fd

    def _real_dir(self, path: Path) -> None:
        if path.is_symlink():
            raise InvalidInput(f"{path} is a symbolic link; refusing to use it", field="work_dir")
        path.mkdir(mode=0o755, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, 0, 0)


def _open_under(root: Path, *names: str, flags: int = _DIR_FLAGS) -> int:
    """Open ``root/names[0]/…``, no component of ``names`` followed if it is a link (the last one is
    opened with ``flags``, the others as directories)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name in enumerate(names):
            nxt = os.open(name, flags if index == len(names) - 1 else _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove(dir_fd: int, name: str) -> None:
    """Remove ``name`` in the directory ``dir_fd``, a tree included; links are removed, not followed."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def deploy_version(ws: Workspace, reaper: Reaper, run_as: RunAs, plan: ProgramPlan, program: dict[str, object],
                   env: dict[str, str], running: str | None) -> None:
    """Blocking: make ``versions/<V>`` ready to start (a no-op if this exact program is there)."""
    if ws.is_deployed(plan.version, program):
        return
    vdir = ws.fresh_dir(ws.version_dir(plan.version))
    ws.fill(reaper, vdir, plan.package, plan.sha256)
    if plan.data is not None:
        ws.fill(reaper, ws.fresh_dir(ws.data_dir(plan.version)), plan.data.package, plan.data.sha256)
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
    ws.fill(reaper, ddir, data.package, data.sha256)
    if data.reload:
        env = dict(env, GALAXY_DATA_DIR=str(ddir), GALAXY_DATA_VERSION=data.version)
        result = run_command(reaper, data.reload, run_as=run_as, cwd=cwd or ddir, env=env, timeout=COMMAND_TIMEOUT)
        if not result.ok:
            raise DeployError(result.describe("reload command", COMMAND_TIMEOUT))
