"""The daemons' secret files (the ZooKeeper credential, the state key): written 0600, refused when
anyone but their owner can read them — a secret every tenant process on the host can read is no
secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from galaxy.errors import InvalidInput


def read_private(path: str | os.PathLike[str], field: str, what: str) -> str:
    """The text of ``path``; InvalidInput naming ``field`` if it is missing, unreadable or readable
    by group or others."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text()
    except OSError as err:
        raise InvalidInput(f"cannot read {what} file {p}: {err.strerror}", field=field) from None
    if stat.S_IMODE(mode) & 0o077:
        raise InvalidInput(f"{what} file {p} is readable by group or others "
                           f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it", field=field)
    return text


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path``, created 0600 (never readable by others, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
