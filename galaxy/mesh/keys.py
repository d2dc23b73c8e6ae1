"""CURVE keypairs on disk and the ring of public keys a server admits.

A key file uses ZeroMQ's certificate format (ZPL), so ``zmq.auth.load_certificate`` and the
``curve_keygen`` tooling read our files and we read theirs::

    #   Galaxy CURVE keypair: keep this file secret
    curve
        public-key = "<40 z85 characters>"
        secret-key = "<40 z85 characters>"

The ``.pub`` file beside it has the same shape without the secret line, so it can be copied to
every server that must admit the key.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.utils import z85

from galaxy.errors import InvalidInput, NotFound

_KEY_LINE = re.compile(r'^\s*(public-key|secret-key)\s*=\s*"?([^"\s]+)"?\s*$', re.MULTILINE)


def check_key(key: str, field: str = "key") -> str:
    """Return ``key`` if it is a 40-character z85 CURVE key, else raise ``InvalidInput``."""
    if not isinstance(key, str) or len(key) != 40:
        raise InvalidInput(f"a CURVE key is 40 z85 characters, got {key!r:.60}", field=field)
    try:
        raw = z85.decode(key.encode("ascii"))
    except (ValueError, KeyError, UnicodeEncodeError):
        raise InvalidInput(f"not a z85 CURVE key: {key!r}", field=field) from None
    if len(raw) != 32:
        raise InvalidInput(f"a CURVE key decodes to 32 bytes, got {len(raw)}", field=field)
    return key


def fingerprint(key: str) -> str:
    """A short, stable name for a public key in logs: 16 hex digits of its SHA-256 (never the key's
    prefix, which is z85 and reads like the key itself)."""
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()[:16]


def _read_keys(path: str | os.PathLike[str]) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise NotFound(f"no key file {os.fspath(path)!r}", field="path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"cannot read key file {os.fspath(path)!r}: {err}", field="path") from None
    return {m.group(1): m.group(2) for m in _KEY_LINE.finditer(text)}


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Keypair:
    """A CURVE keypair; ``public`` and ``secret`` are z85 text (40 characters each)."""

    public: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        check_key(self.public, "public")
        check_key(self.secret, "secret")
        if zmq.curve_public(self.secret.encode()).decode() != self.public:
            raise InvalidInput("the public key does not belong to the secret key", field="public")

    def __repr__(self) -> str:  # never print a secret into a log
        return f"Keypair(public={self.public!r})"

    @classmethod
    def generate(cls) -> Keypair:
        public, secret = zmq.curve_keypair()
        return cls(public.decode(), secret.decode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keypair:
        """Read a key file written by :meth:`save` (or by ``zmq.auth.create_certificates``)."""
        found = _read_keys(path)
        secret = found.get("secret-key")
        if secret is None:
            raise InvalidInput(f"{os.fspath(path)!r} holds no secret-key (is it a .pub?)", field="path")
        public = found.get("public-key") or zmq.curve_public(check_key(secret, "secret").encode()).decode()
        return cls(public, secret)

    @staticmethod
    def load_public(path: str | os.PathLike[str]) -> str:
        """The public key in a ``.pub`` file or in a full key file."""
        found = _read_keys(path)
        public = found.get("public-key")
        if public is None:
            raise InvalidInput(f"{os.fspath(path)!r} holds no public-key", field="path")
        return check_key(public, "public")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the keypair to ``path`` (mode 0600) and the public key to ``path + ".pub"`` (0644).

        Returns the path of the ``.pub`` file.
        """
        target = Path(path)
        pub = target.with_name(target.name + ".pub")
        _write_private(target, _render(self.public, self.secret), 0o600)
        _write_private(pub, _render(self.public, None), 0o644)
        return pub


def _render(public: str, secret: str | None) -> str:
    lines = [
        "#   Galaxy CURVE " + ("keypair: keep this file secret" if secret else "public key"),
        "curve",
        f'    public-key = "{public}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret}"')
    return "\n".join(lines) + "\n"


class KeyRing:
    """The public keys a server admits, each with a name (``agent:host7``, ``user:alice``).

    Servers consult the ring on every connection (ZAP) and on every message, so ``remove`` cuts a
    peer off at once, also one that is already connected. Lookups take no lock: a dict read is
    atomic under the GIL, and writers replace entries under a lock.
    """

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        self._named: dict[str, int] = {}   # name -> how many keys carry it (rotation: old and new)
        for public, name in (keys or {}).items():
            self.add(public, name)

    def add(self, public: str, name: str) -> None:
        check_key(public, "public")
        if not isinstance(name, str) or not name:
            raise InvalidInput("a key needs a non-empty name", field="name")
        with self._lock:
            self._forget_name(self._names.get(public))
            self._names[public] = name
            self._named[name] = self._named.get(name, 0) + 1

    def _forget_name(self, name: str | None) -> None:
        if name is not None:
            left = self._named.get(name, 0) - 1
            if left > 0:
                self._named[name] = left
            else:
                self._named.pop(name, None)

    def add_file(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Admit the public key in a ``.pub`` (or key) file; the name defaults to the file's stem."""
        public = Keypair.load_public(path)
        stem = Path(path).name.removesuffix(".pub")
        self.add(public, name or stem)
        return public

    def remove(self, public: str) -> bool:
        """Stop admitting ``public``; True if it was there."""
        with self._lock:
            name = self._names.pop(public, None)
            self._forget_name(name)
            return name is not None

    def name_of(self, public: str) -> str | None:
        return self._names.get(public)

    def has_name(self, name: str) -> bool:
        """Does some key carry ``name``? (ResMan asks whether ``agent-<host>`` exists: then that host's
        name is reserved for that key, even before its Agent first connects.)"""
        return self._named.get(name, 0) > 0

    def names(self) -> list[str]:
        return sorted(self._names.copy().values())

    def items(self) -> list[tuple[str, str]]:
        """(public, name) pairs, a snapshot."""
        return list(self._names.copy().items())

    def __contains__(self, public: object) -> bool:
        return public in self._names

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.copy())

    def __repr__(self) -> str:
        return f"KeyRing({len(self._names)} keys)"
