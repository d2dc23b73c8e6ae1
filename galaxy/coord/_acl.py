"""Who may read and write which znode: the daemons' digest credential and the ACL of every path.

Why: ZooKeeper is reachable by every user of the cluster (their configs point at it), and what is in
it decides who is an administrator (`state/users`), where SDKs, Agents and AppWorkers dial (leader
records) and holds worker keys. So Galaxy's daemons authenticate with one `digest` credential, and
every znode a daemon creates carries the ACL ``acl_for(path)`` picks: the credential may do
everything, and only leader records and naming are also readable by anyone (clients need them and
hold no credential). A client without a credential (SDK, CLI, AppWorker) creates open znodes, as
before: on a secured tree it cannot create anything anyway.

``secure_tree`` is the upgrade: a tree made by an older (open) Galaxy gets these ACLs when a daemon
with the credential starts.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient, TransactionRequest
from kazoo.exceptions import NoAuthError, NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from galaxy.coord._paths import Paths, world_readable
from galaxy.coord._private_file import read_private, write_private
from galaxy.errors import InvalidInput, PermissionDenied

log = logging.getLogger(__name__)

AUTH_FIELD = "zookeeper_auth"
DEFAULT_USER = "galaxy"
WORLD_READ = make_acl("world", "anyone", read=True)


@dataclass(frozen=True)
class Credential:
    """The daemons' ZooKeeper identity (``digest`` scheme): a user name and a random password."""

    user: str
    password: str

    def __repr__(self) -> str:  # never print the password (logs, tracebacks, config dumps)
        return f"Credential({self.user!r}, <secret>)"

    @classmethod
    def generate(cls, user: str = DEFAULT_USER) -> Credential:
        return cls(user, secrets.token_urlsafe(32))

    @classmethod
    def parse(cls, text: str, field: str = AUTH_FIELD) -> Credential:
        user, sep, password = text.strip().partition(":")
        if not sep or not user or not password or "\n" in password:
            raise InvalidInput("expected one line 'user:password'", field=field)
        return cls(user, password)

    @classmethod
    def load(cls, path: str | os.PathLike[str], field: str = AUTH_FIELD) -> Credential:
        """Read the credential file; InvalidInput naming ``field`` if it is missing, unreadable,
        malformed or readable by group or others (a credential anyone on the host can read is one
        every tenant process can use)."""
        return cls.parse(read_private(path, field, "ZooKeeper credential"), field)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``user:password`` to ``path``, created 0600 (never world-readable, not even briefly)."""
        write_private(path, f"{self.user}:{self.password}\n")

    @property
    def auth_data(self) -> list[tuple[str, str]]:
        """What kazoo sends at every (re)connection."""
        return [("digest", f"{self.user}:{self.password}")]

    @functools.cached_property
    def daemon_acl(self) -> ACL:
        # Made once: it hashes the password (8.5 µs), and every create a daemon makes carries it.
        return make_digest_acl(self.user, self.password, all=True)


def acl_for(path: str, credential: Credential | None) -> list[ACL]:
    """The ACL a znode at ``path`` (relative to the client's chroot) gets: everything for the
    daemons' credential, plus read for anyone on leader records and naming. Open without a
    credential (a cluster not yet given one)."""
    if credential is None:
        return list(OPEN_ACL_UNSAFE)
    return [credential.daemon_acl, WORLD_READ] if world_readable(path) else [credential.daemon_acl]


class GalaxyZooKeeper(KazooClient):
    """A KazooClient whose every create (plain, ``makepath`` parents, ``ensure_path``, transactions)
    carries ``acl_for(path)``: call sites never choose an ACL, so none can forget one."""

    def __init__(self, *args: Any, credential: Credential | None = None, **kwargs: Any) -> None:
        if credential is not None:
            kwargs["auth_data"] = credential.auth_data
        super().__init__(*args, **kwargs)
        self.credential = credential

    def create_async(self, path: str, value: bytes = b"", acl: Sequence[ACL] | None = None,
                     ephemeral: bool = False, sequence: bool = False, makepath: bool = False,
                     include_data: bool = False) -> Any:
        # makepath hands the leaf's ACL to each missing parent (through ensure_path_async): the
        # path decides instead, so a pod record never makes `naming`'s parent world-readable.
        if acl is None or self.credential is not None:
            acl = acl_for(path, self.credential)
        return super().create_async(path, value, acl=acl, ephemeral=ephemeral, sequence=sequence,
                                    makepath=makepath, include_data=include_data)

    def transaction(self) -> TransactionRequest:
        return _AclTransaction(self)


class _AclTransaction(TransactionRequest):
    client: GalaxyZooKeeper

    def create(self, path: str, value: bytes = b"", acl: Sequence[ACL] | None = None,
               ephemeral: bool = False, sequence: bool = False) -> None:
        if acl is None or self.client.credential is not None:
            acl = acl_for(path, self.client.credential)
        super().create(path, value, acl=acl, ephemeral=ephemeral, sequence=sequence)


def secure_tree(client: KazooClient, paths: Paths, *, chunk: int = 500) -> int:
    """Give every znode under ``paths.root`` its ``acl_for`` ACL where it differs; return how many
    were changed.

    Idempotent and cheap once done: the root is set last, so a root that already has its ACL means
    a complete earlier pass (one read). A tree made by an older, open Galaxy is secured by the first
    daemon with the credential that starts. PermissionDenied if a node's ACL locks the credential
    out (someone else made it: the operator must look).
    """
    credential: Credential | None = getattr(client, "credential", None)
    if credential is None:
        return 0
    root = paths.root
    try:
        acl, _ = client.get_acls(root)
    except NoNodeError:
        return 0
    except NoAuthError:
        raise PermissionDenied(f"{root} is not readable with the daemons' ZooKeeper credential "
                               f"({credential.user}): made by someone else, or another credential",
                               field=AUTH_FIELD) from None
    if _same(acl, acl_for(root, credential)):
        return 0
    changed = 0
    level = [root]
    while level:
        below: list[str] = []
        for start in range(0, len(level), chunk):
            batch = level[start:start + chunk]
            children = [(p, client.get_children_async(p), client.get_acls_async(p)) for p in batch]
            pending: list[Any] = []
            for node, kids, acls in children:
                try:
                    below.extend(f"{node}/{kid}" for kid in kids.get())
                    current, _ = acls.get()
                except NoNodeError:
                    continue
                except NoAuthError:
                    raise PermissionDenied(f"{node} locks out the daemons' ZooKeeper credential "
                                           f"({credential.user})", field=AUTH_FIELD) from None
                want = acl_for(node, credential)
                if node != root and not _same(current, want):
                    pending.append(client.set_acls_async(node, want))
            for result in pending:
                try:
                    result.get()
                    changed += 1
                except NoNodeError:
                    continue
        level = below
    client.set_acls(root, acl_for(root, credential))
    log.warning("ZooKeeper tree %s secured: %d znodes given the daemons-only / world-read ACLs",
                root, changed + 1)
    return changed + 1


def _same(a: Sequence[ACL], b: Sequence[ACL]) -> bool:
    return {(x.perms, x.id.scheme, x.id.id) for x in a} == {(x.perms, x.id.scheme, x.id.id) for x in b}


__all__ = ["AUTH_FIELD", "Credential", "GalaxyZooKeeper", "WORLD_READ", "acl_for", "secure_tree"]
