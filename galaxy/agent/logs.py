"""Reading a container's log files for `galaxy pod logs`: a tail, or a follow from an offset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from galaxy.errors import InvalidInput

MAX_CHUNK = 1 << 20   # one reply carries at most this much; a follower asks again from the new offset


def read_log(path: Path, *, tail: int = 100, offset: int | None = None) -> dict[str, Any]:
    """`{"data": str, "offset": int}`; `offset` is where the next read should start.

    A file smaller than the offset asked was rotated: reading starts again at its beginning. A file
    that does not exist yet reads as empty (the service has not written anything).
    """
    if not isinstance(tail, int) or isinstance(tail, bool) or tail < 0:
        raise InvalidInput("expected a whole number >= 0", field="tail")
    if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool) or offset < 0):
        raise InvalidInput("expected a byte offset >= 0", field="offset")
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return {"data": "", "offset": 0}
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if offset is not None:
            start = offset if offset <= size else 0
            fh.seek(start)
            data = fh.read(MAX_CHUNK)
            return {"data": data.decode("utf-8", "replace"), "offset": start + len(data)}
        start = max(0, size - MAX_CHUNK)
        fh.seek(start)
        data = fh.read(size - start)
    lines = data.splitlines(keepends=True)
    if start > 0 and lines:
        lines = lines[1:]  # the first line was cut by the chunk bound
    kept = lines[-tail:] if tail else []
    return {"data": b"".join(kept).decode("utf-8", "replace"), "offset": size}
