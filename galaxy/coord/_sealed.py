"""Secrets at rest in ZooKeeper: sealed with a key only ResMan and the AppMaster hold.

Why: ZooKeeper's ACLs keep clients out, but every daemon host holds the ZooKeeper credential (an
Agent host too), and snapshots, transaction logs and backups of ZooKeeper hold whatever is written.
So a job's worker secret key and pod seed are never written in plain text: the AppMaster seals them
before they go into its job records and into the group template it hands ResMan, and ResMan opens
them only to put them in a create request, which goes to the one host's Agent over CURVE. Agents
never hold the state key.

How: AES-SIV (RFC 5297, `cryptography`'s ``AESSIV``) with the value's name as associated data, so a
sealed pod seed cannot be passed off as a worker key. SIV is deterministic on purpose: the same
secret seals to the same text, so the AppMaster's group template still compares equal to the one
ResMan holds (a random nonce would make every comparison a change). It reveals only that two sealed
values are equal. A value without the ``sealed:v1:`` prefix is a plain one from before sealing, and
is read as it is.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from galaxy.coord._private_file import read_private, write_private
from galaxy.errors import InvalidInput, PermissionDenied

PREFIX = "sealed:v1:"
KEY_FIELD = "state_key"
_KEY_BITS = 512  # AES-256-SIV: two 256-bit keys


def _aessiv() -> Any:
    """`cryptography`'s AES-SIV, imported when a key is made: ~11 ms that the CLI, the SDK and the
    Agent (which import this package but never hold a state key) should not pay."""
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    return AESSIV


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class StateKey:
    """The cluster's key for secrets at rest (a 0600 file of 64 random bytes, base64)."""

    def __init__(self, key: bytes) -> None:
        if len(key) * 8 != _KEY_BITS:
            raise InvalidInput(f"a state key is {_KEY_BITS // 8} bytes, got {len(key)}", field=KEY_FIELD)
        self._siv = _aessiv()(key)
        self._key = key

    def __repr__(self) -> str:  # never print the key
        return "StateKey(<secret>)"

    @classmethod
    def generate(cls) -> StateKey:
        return cls(os.urandom(_KEY_BITS // 8))

    @classmethod
    def load(cls, path: str | os.PathLike[str], field: str = KEY_FIELD) -> StateKey:
        """Read the key file; InvalidInput naming ``field`` if it is missing, unreadable, malformed
        or readable by group or others."""
        text = read_private(path, field, "state key").strip()
        try:
            key = base64.b64decode(text, validate=True)
        except ValueError:
            raise InvalidInput(f"state key file {os.fspath(path)} does not hold base64", field=field) from None
        return cls(key)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key to ``path``, created 0600."""
        write_private(path, base64.b64encode(self._key).decode() + "\n")

    def seal(self, value: str, name: str) -> str:
        """``value`` sealed under ``name`` (what it is: ``worker_secret``, ``env:GALAXY_WORKER_KEY``)."""
        if is_sealed(value) or not value:
            return value
        sealed = self._siv.encrypt(value.encode(), [name.encode()])
        return PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, value: str, name: str) -> str:
        """The plain value of ``value`` sealed under ``name``; a plain value as it is.
        PermissionDenied (field ``state_key``) when it was sealed with another key or under another
        name: the caller holds the wrong key, or the record was tampered with."""
        if not is_sealed(value):
            return value
        from cryptography.exceptions import InvalidTag

        try:
            sealed = base64.urlsafe_b64decode(value[len(PREFIX):])
            return str(self._siv.decrypt(sealed, [name.encode()]).decode())
        except (ValueError, InvalidTag):
            raise PermissionDenied(f"cannot open sealed {name}: sealed with another state key, or altered",
                                   field=KEY_FIELD) from None


def open_sealed(key: StateKey | None, value: str, name: str) -> str:
    """``key.open`` that also says clearly when a sealed value meets a daemon with no state key."""
    if not is_sealed(value):
        return value
    if key is None:
        raise PermissionDenied(f"{name} is sealed but this daemon has no state_key in its config",
                               field=KEY_FIELD)
    return key.open(value, name)


__all__ = ["KEY_FIELD", "PREFIX", "StateKey", "is_sealed", "open_sealed"]
