"""``galaxy user …``: users, their grants, quotas and usage (administrators manage; anyone reads their own).

``user create`` makes the new user's keypair on this machine and sends only the public half: the
secret key is written once, to a file only the operator running the command can read, and never
crosses the network. Handing that file to its user is the operator's business (as with ``ssh-keygen``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from galaxy.cli.output import check_output, emit
from galaxy.cli.session import session
from galaxy.cli.tenancy_view import quota_text, usage_text, user_line, user_text, users_text, whoami_text
from galaxy.errors import Conflict, InvalidInput
from galaxy.sdk.errors import OutcomeUnknown
from galaxy.tenancy.model import check_user_name


def words(values: Iterable[Any]) -> list[str]:
    """Command-line words as a flat list: fire turns ``a,b`` into a tuple, ``a,b.c`` stays text."""
    out: list[str] = []
    for value in values:
        if isinstance(value, list | tuple):
            out.extend(words(value))
        elif value is not None:
            out.extend(part.strip() for part in str(value).split(",") if part.strip())
    return out


def disk_flag(value: Any) -> dict[str, str] | None:
    """``--disk ssd=100Gi,hdd=1Ti`` → {"ssd": "100Gi", "hdd": "1Ti"} (the sizes are parsed by the SDK)."""
    if value is None:
        return None
    out: dict[str, str] = {}
    for item in words([value]):
        medium, sep, size = item.partition("=")
        if not sep or not medium.strip() or not size.strip():
            raise InvalidInput(f"expected MEDIUM=SIZE[,MEDIUM=SIZE…] such as ssd=100Gi,hdd=1Ti, got {item!r}",
                               field="disk")
        out[medium.strip()] = size.strip()
    if not out:
        raise InvalidInput("expected MEDIUM=SIZE[,MEDIUM=SIZE…] such as ssd=100Gi,hdd=1Ti", field="disk")
    return out


def _name(value: Any) -> str:
    return check_user_name(str(value), "name")


def _optional_name(value: Any) -> str | None:
    return None if value is None else _name(value)


def _reserve(path: Path) -> None:
    """Create ``path`` empty and private, failing if anything is there: a key is never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{path} already exists; a key file is never overwritten: choose another --key-out",
                       field="key-out") from None
    except OSError as err:
        raise InvalidInput(f"cannot write {path}: {err.strerror}", field="key-out") from None
    os.close(fd)


def created_text(record: dict[str, Any], key_file: str, cluster: str, zookeeper: str,
                 zookeeper_ca: str | None = None) -> str:
    name = record.get("name")
    ca = f" --zookeeper_ca {zookeeper_ca}" if zookeeper_ca else ""
    return (f"user {name} created{' (administrator)' if record.get('admin') else ''}\n"
            f"secret key written to {key_file} (mode 0600): give it to {name} only; its public half is in "
            f"{key_file}.pub\n"
            f"{name} points the galaxy command at it with:\n"
            f"  galaxy config init --cluster {cluster} --zookeeper {zookeeper}{ca} --key {key_file}\n"
            f"or for one shell:  export GALAXY_KEY={key_file}\n")


class QuotaCommands:
    """A user's limits: set them (administrators), show them beside what the user's jobs hold."""

    def set(self, name: str, cpu: Any = None, memory: Any = None, disk: Any = None, jobs: Any = None,
            replicas: Any = None, clear: Any = None, output: str = "table") -> None:
        """Set NAME's limits; the ones not given stay. --cpu 8 --memory 16Gi --disk ssd=100Gi,hdd=1Ti
        --jobs 10 --replicas 100; --clear cpu,disk.ssd lifts limits."""
        check_output(output)
        user = _name(name)
        cleared = words([clear]) if clear is not None else []
        with session() as client:
            reply = client.quota_set(user, cpu=cpu, memory=memory, disk=disk_flag(disk), jobs=jobs,
                                     replicas=replicas, clear=cleared)
        emit(reply, output, quota_text)

    def show(self, name: Any = None, output: str = "table") -> None:
        """NAME's (default: your own) limits beside what their jobs hold now."""
        check_output(output)
        user = _optional_name(name)
        with session() as client:
            reply = client.quota(user)
        emit(reply, output, quota_text)


class UserCommands:
    """Users: create (with a new key), remove, list, show, whoami; grant and revoke; quota; usage."""

    def __init__(self) -> None:
        self.quota = QuotaCommands()

    def create(self, name: str, admin: bool = False, key_out: str = "", output: str = "table") -> None:
        """Make user NAME with a new keypair: the secret goes to --key-out (default ./NAME.key, mode 0600,
        never overwritten), only the public key is sent. --admin makes an administrator."""
        check_output(output)
        user = _name(name)
        if not isinstance(admin, bool):
            raise InvalidInput(f"--admin takes no value, got {admin!r}", field="admin")
        path = Path(str(key_out) if key_out else f"{user}.key").expanduser().absolute()
        pub = path.with_name(path.name + ".pub")
        if path.is_dir():
            raise InvalidInput(f"{path} is a directory; name a file", field="key-out")
        for existing in (path, pub):
            if existing.exists():  # checked again when the file is made (_reserve), as a race may fill it
                raise Conflict(f"{existing} already exists; a key file is never overwritten: choose another "
                               f"--key-out", field="key-out")
        from galaxy.mesh import Keypair

        with session() as client:  # the configuration is read before any file is written
            config = client.config
            _reserve(path)
            kept = False
            try:
                keypair = Keypair.generate()
                keypair.save(path)
                record = client.user_create(user, keypair.public, admin=admin)
                kept = True
            except OutcomeUnknown:
                kept = True
                print(f"the key file {path} is kept: check `galaxy user show {user}` before trying again",
                      file=sys.stderr)
                raise
            finally:
                if not kept:
                    path.unlink(missing_ok=True)
                    pub.unlink(missing_ok=True)
        emit({**record, "key_file": str(path)}, output,
             lambda r: created_text(r, str(path), config.cluster, config.zookeeper, config.zookeeper_ca))

    def remove(self, name: str, output: str = "table") -> None:
        """Remove user NAME: their key is refused from now on (their jobs stay; remove those first)."""
        check_output(output)
        user = _name(name)
        with session() as client:
            reply = client.user_remove(user)
        emit(reply, output, lambda r: f"user {r.get('user')} removed\n")

    def list(self, output: str = "table") -> None:
        """Every user: administrator or not, grants, limits, age."""
        check_output(output)
        with session() as client:
            rows = client.users()
        emit(rows, output, users_text)

    def show(self, name: Any = None, output: str = "table") -> None:
        """NAME's (default: your own) record: key, grants, limits beside what is used."""
        check_output(output)
        user = _optional_name(name)
        with session() as client:
            record = client.user(user)
        emit(record, output, user_text)

    def whoami(self, output: str = "table") -> None:
        """Who the cluster takes your key for, and what you may do where."""
        check_output(output)
        with session() as client:
            reply = client.whoami()
        emit(reply, output, whoami_text)

    def grant(self, name: str, pool: str, *permissions: Any, output: str = "table") -> None:
        """Give NAME PERMISSIONS on POOL: job.create job.update job.delete job.read, `all` (those four),
        host.admin (only when named)."""
        check_output(output)
        user = _name(name)
        perms = words(permissions)
        if not perms:
            raise InvalidInput("name the permissions: job.create job.update job.delete job.read, all, host.admin",
                               field="permissions")
        with session() as client:
            record = client.grant(user, str(pool), perms)
        emit(record, output, user_line)

    def revoke(self, name: str, pool: str, *permissions: Any, output: str = "table") -> None:
        """Take PERMISSIONS on POOL from NAME; with none named, every grant on POOL."""
        check_output(output)
        user = _name(name)
        perms = words(permissions)
        with session() as client:
            record = client.revoke(user, str(pool), perms or None)
        emit(record, output, user_line)

    def usage(self, name: Any = None, since: Any = None, pool: Any = None, output: str = "table") -> None:
        """What NAME (default: you) used and reserved, per pool: --since 24h | 2026-11-01 | epoch seconds
        (default: the last day), --pool P."""
        check_output(output)
        user = _optional_name(name)
        from galaxy.sdk import parse_since

        start = None if since is None else parse_since(since)  # before connecting: a typo fails at once
        with session() as client:
            report = client.usage(user, since=start, pool=None if pool is None else str(pool))
        emit(report, output, usage_text)
