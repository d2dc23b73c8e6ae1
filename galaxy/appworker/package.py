"""One package onto the work disk, in a child process that runs as the service user, never as root.

The worker (PID 1, root in most containers) does not read a package itself. For each package it runs,
as the service user (see ``Workspace.fill`` in deploy.py),

    <python> -I -S <this file> UID GID URL DEST SHA256|- MAX_BYTES

which, in order:

1. imports what the fetch and the unpack will need (tarfile, zipfile and their codecs; urllib and an
   SSL context for http(s));
2. makes sure it is UID/GID (real, effective and saved ids). It is, unless the worker had to start it
   as root because the user cannot execute the interpreter (a pyenv under a 0700 /root); then it drops
   here, with the library already imported, and refuses to go on if it cannot. From here on it only
   has the user's rights, so ``file:///etc/shadow`` is EACCES and a hostile archive can at worst write
   what the user can write;
3. streams the package into DEST (a directory the user owns), hashing and counting as it goes; more
   than MAX_BYTES, or than the room left on the disk, stops it;
4. compares the sha256, when one is given, before anything is unpacked (the download is removed on a
   mismatch);
5. unpacks a tar (any compression) or zip, judged by content, refusing members that escape DEST
   (absolute, ``..``, links pointing out, devices, links in a zip) and archives that would unpack to
   more than ``UNPACK_FACTOR`` × MAX_BYTES or than the room left, or that hold more than
   ``MAX_MEMBERS`` members (zip bombs). Sizes are the ones the archive declares, summed before the
   first byte is written: tarfile and zipfile never write more than a member declares.

Exit 0 on success; ``EXIT_REFUSED`` with the cause as the last line of stderr; anything else is a bug
(a traceback). Run by path, not ``-m``: ``-m galaxy.appworker.package`` would first import
``galaxy.appworker``, the whole worker. So this module uses the standard library only; the worker
imports it too, for the constants and the in-process ``fetch``/``unpack`` of ``galaxy.appworker``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import urllib.parse
from pathlib import Path, PurePosixPath

TYPE_CHECKING = False  # not typing's: importing typing costs the child ~3 ms
if TYPE_CHECKING:
    from typing import IO, Any

MARKER = ".galaxy-deployed"   # the worker's deploy marker: a package may not be named so
PART = ".galaxy-package.part"  # the download until it is complete and checked
FETCH_TIMEOUT = 120.0          # per socket operation of an http(s) fetch
UNPACK_FACTOR = 4              # unpacked bytes allowed per byte of the size limit
MAX_MEMBERS = 1_000_000        # members per archive (each costs an inode)
CHUNK = 1 << 20
EXIT_REFUSED = 3


class PackageError(Exception):
    """Why a package was refused. The text is the cause; the worker reports ``package <url>: <cause>``."""


def fetch(url: str, dest_dir: Path, *, max_bytes: int, sha256: str | None = None,
          timeout: float = FETCH_TIMEOUT, context: Any = None) -> Path:
    """Copy the package at ``url`` (``file://``, an absolute path, or ``http(s)://``) into ``dest_dir``,
    checking its size while it streams and its sha256 (if given) at the end; returns the file."""
    parsed = urllib.parse.urlparse(url)
    name = PurePosixPath(urllib.parse.unquote(parsed.path)).name or "package"
    if name in (".", "..", MARKER, PART):
        name = "package"
    limit, bound = _room(dest_dir, max_bytes, "the size limit per package")
    if parsed.scheme in ("", "file"):
        source, declared = _open_file(parsed)
    elif parsed.scheme in ("http", "https"):
        source, declared = _open_http(url, timeout, context)
    else:
        raise PackageError(f"unsupported scheme {parsed.scheme!r} (file, http, https)")
    if declared is not None and declared > limit:
        source.close()
        raise PackageError(f"larger than {limit} bytes ({bound}): {declared} bytes")
    part = dest_dir / PART
    try:
        digest, size = _stream(source, part, limit, bound)
        if declared is not None and size != declared:
            raise PackageError(f"cannot fetch: got {size} of {declared} bytes")
        if sha256 is not None and digest != sha256:
            raise PackageError(f"sha256 mismatch: expected {sha256}, got {digest}; nothing unpacked")
        target = dest_dir / name
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return target


def unpack(archive: Path, dest: Path, *, max_bytes: int) -> bool:
    """Unpack a tar (any compression) or zip archive into ``dest``, judged by content; False if the
    file is no archive (it stays as it is: a single binary, a script). ``max_bytes`` bounds the sum of
    the members' sizes (the room left on the disk bounds it too)."""
    import tarfile
    import zipfile

    limit, bound = _room(dest, max_bytes, f"{UNPACK_FACTOR} × the size limit per package")
    if zipfile.is_zipfile(archive):
        _unzip(archive, dest, limit, bound)
        return True
    if tarfile.is_tarfile(archive):
        _untar(archive, dest, limit, bound)
        return True
    return False


def drop_privileges(uid: int, gid: int) -> None:
    """Be ``uid``/``gid`` for good: real, effective and saved ids, no supplementary groups.

    The worker normally starts the child as the user already (then this checks and returns). When the
    user cannot execute the interpreter, it starts the child as itself (root) and this drops, as
    ``Popen(user=, group=, extra_groups=[])`` would, with CAP_SETUID and CAP_SETGID."""
    if os.getresuid() == (uid, uid, uid) and os.getresgid() == (gid, gid, gid):
        return
    if os.geteuid() != 0:
        raise PackageError(f"cannot fetch as uid {uid} gid {gid}: running as uid {os.geteuid()}, not root")
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as err:
        raise PackageError(f"cannot become uid {uid} gid {gid}: {err.strerror or err}") from None
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PackageError(f"cannot become uid {uid} gid {gid}")


def preload(url: str) -> Any:
    """Import, while the library is still readable, all the fetch and the unpack of ``url`` will use;
    returns the SSL context for an http(s) URL (its CA files are read now, too)."""
    import tarfile  # noqa: F401
    import zipfile  # noqa: F401

    for codec in ("gzip", "bz2", "lzma"):
        try:
            __import__(codec)
        except ImportError:  # an interpreter built without it: tarfile says so itself
            pass
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        return None
    import encodings.idna  # noqa: F401  (getaddrinfo encodes host names with it)
    import urllib.request as _request  # noqa: F401

    try:
        import ssl
    except ImportError:
        return None
    return ssl.create_default_context()


def main(argv: list[str]) -> int:
    try:
        uid, gid, url, dest, sha256, max_bytes = int(argv[0]), int(argv[1]), argv[2], Path(argv[3]), argv[4], \
            int(argv[5])
    except (IndexError, ValueError):
        print("usage: package.py UID GID URL DEST SHA256|- MAX_BYTES", file=sys.stderr)
        return 2
    try:
        context = preload(url)
        drop_privileges(uid, gid)
        archive = fetch(url, dest, max_bytes=max_bytes, sha256=None if sha256 == "-" else sha256,
                        context=context)
        unpack(archive, dest, max_bytes=max_bytes * UNPACK_FACTOR)
    except PackageError as err:
        print(err, file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _room(dest: Path, max_bytes: int, what: str) -> tuple[int, str]:
    """The bound for what is written into ``dest``: ``max_bytes``, or less if the disk has less room."""
    try:
        vfs = os.statvfs(dest)
    except OSError as err:
        raise PackageError(f"cannot use {dest}: {err.strerror or err}") from None
    free = vfs.f_bavail * vfs.f_frsize
    if free < max_bytes:
        return free, "the room left on the work disk"
    return max_bytes, what


def _open_file(parsed: urllib.parse.ParseResult) -> tuple[IO[bytes], int | None]:
    path = urllib.parse.unquote(parsed.path)
    if not os.path.isabs(path):
        raise PackageError("a file package needs an absolute path")
    try:
        # O_NONBLOCK: opening a FIFO must not hang; anything but a regular file is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise PackageError(f"cannot read it: {err.strerror or err}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise PackageError("cannot read it: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0), info.st_size


def _open_http(url: str, timeout: float, context: Any) -> tuple[IO[bytes], int | None]:
    # Imported here: http.client and email cost ~15 ms, and most packages are files.
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlsplit
    from urllib.request import HTTPRedirectHandler, HTTPSHandler, build_opener

    origin = urlsplit(url)[:2]

    class SameOrigin(HTTPRedirectHandler):
        """The pool's policy allowed this URL's origin, not wherever it redirects to."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
            if urlsplit(newurl)[:2] != origin:
                raise HTTPError(newurl, code, f"redirect to another origin refused: {newurl}", headers, fp)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    try:
        reply = build_opener(SameOrigin(), HTTPSHandler(context=context)).open(url, timeout=timeout)
    except (URLError, OSError, ValueError) as err:
        reason = err if isinstance(err, HTTPError) else getattr(err, "reason", err)
        raise PackageError(f"cannot fetch it: {reason}") from None
    length = reply.headers.get("Content-Length")
    return reply, int(length) if length and length.isdigit() else None


def _stream(source: IO[bytes], part: Path, limit: int, bound: str) -> tuple[str, int]:
    """Copy ``source`` to ``part`` (created, never followed), hashing and counting: (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        source.close()
        raise PackageError(f"cannot store it: {err.strerror or err}") from None
    with source, open(fd, "wb") as out:
        while True:
            try:
                chunk = source.read(CHUNK)
            except Exception as err:  # socket errors, timeouts, http.client's IncompleteRead, …
                raise PackageError(f"cannot fetch it: {err}") from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise PackageError(f"larger than {limit} bytes ({bound})")
            digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as err:
                raise PackageError(f"cannot store it: {err.strerror or err}") from None
    return digest.hexdigest(), size


def _untar(archive: Path, dest: Path, limit: int, bound: str) -> None:
    import tarfile

    root = dest.resolve()
    try:
        with tarfile.open(archive) as tar:
            members: list[tarfile.TarInfo] = []
            total = 0
            for member in tar:  # lazily: a bomb is stopped before the rest of it is decompressed
                _check_count(len(members) + 1)
                _check_member(member.name, root)
                if member.issym() or member.islnk():
                    link = member.linkname
                    base = (root / member.name).parent if member.issym() else root
                    _check_inside((base / link) if not os.path.isabs(link) else Path(link), root, member.name)
                elif not (member.isfile() or member.isdir()):
                    raise PackageError(f"member {member.name!r}: only files, dirs and links allowed")
                total += member.size if member.isfile() else 0
                _check_total(total, limit, bound)
                members.append(member)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise PackageError(f"cannot unpack {archive.name}: {err}") from None


def _unzip(archive: Path, dest: Path, limit: int, bound: str) -> None:
    import zipfile

    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_count(len(infos))
            for info in infos:
                _check_member(info.filename, root)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise PackageError(f"member {info.filename!r}: links in zip files are refused")
            _check_total(sum(info.file_size for info in infos), limit, bound)
            for info in infos:
                zf.extract(info, dest)
                mode = (info.external_attr >> 16) & 0o755
                if mode and not info.is_dir():
                    os.chmod(dest / info.filename, mode | 0o600)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as err:
        raise PackageError(f"cannot unpack {archive.name}: {err}") from None


def _check_count(count: int) -> None:
    if count > MAX_MEMBERS:
        raise PackageError(f"more than {MAX_MEMBERS} members")


def _check_total(total: int, limit: int, bound: str) -> None:
    if total > limit:
        raise PackageError(f"unpacks to more than {limit} bytes ({bound})")


def _check_member(name: str, root: Path) -> None:
    if not name or name.startswith("/") or "\0" in name:
        raise PackageError(f"member {name!r} escapes the version directory")
    _check_inside(root / name, root, name)


def _check_inside(path: Path, root: Path, name: str) -> None:
    resolved = Path(os.path.normpath(path))
    if resolved != root and root not in resolved.parents:
        raise PackageError(f"member {name!r} escapes the version directory")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
