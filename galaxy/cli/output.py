"""How the CLI prints: fixed-column tables with human units, exactly one JSON document, progress on stderr.

Every verb takes ``--output table|json``. Tables are for people (``1.5Gi``, ``500m``, ``3m`` ago);
JSON is for programs and is the SDK's reply as is, printed once, so ``galaxy … --output json | jq``
always parses. Progress (``--wait``) goes to stderr so it never mixes into either.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from galaxy.errors import InvalidInput

FORMATS = ("table", "json")
Column = tuple[str, Callable[[dict[str, Any]], Any]]


def check_output(output: str) -> str:
    if output not in FORMATS:
        raise InvalidInput(f"--output must be one of {', '.join(FORMATS)}, got {output!r}", field="output")
    return output


def print_json(data: Any, out: TextIO | None = None) -> None:
    """One JSON document (keys in reply order), ending with a newline."""
    (out or sys.stdout).write(json.dumps(data, indent=2, default=str) + "\n")


# ---- units -----------------------------------------------------------------------------------------

_BYTE_UNITS = (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def human_bytes(amount: Any) -> str:
    """1610612736 → ``1.5Gi``; at most one decimal, trailing ``.0`` dropped; ``-`` when unknown."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return "-"
    for unit, size in _BYTE_UNITS:
        if abs(amount) >= size:
            text = f"{amount / size:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    return f"{int(amount)}B"


def human_cpu(cores: Any) -> str:
    """Cores as people write them: 0.5 → ``500m``, 2.0 → ``2``, 1.25 → ``1.25``."""
    if isinstance(cores, bool) or not isinstance(cores, int | float):
        return "-"
    if 0 < abs(cores) < 1:
        return f"{round(cores * 1000)}m"
    return f"{cores:.2f}".rstrip("0").rstrip(".")


def human_age(when: Any, now: float | None = None) -> str:
    """Seconds since the epoch time ``when``: ``45s``, ``3m``, ``5h``, ``2d``; ``-`` when unknown."""
    if isinstance(when, bool) or not isinstance(when, int | float) or when <= 0:
        return "-"
    seconds = max(0, int((time.time() if now is None else now) - when))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clock(when: Any) -> str:
    """An epoch time as local ``YYYY-MM-DD HH:MM:SS``."""
    if isinstance(when, bool) or not isinstance(when, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def text(value: Any) -> str:
    """A cell: None → ``-``, lists joined with commas, dicts as ``k=v`` pairs."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


# ---- tables ----------------------------------------------------------------------------------------

def table(rows: Iterable[dict[str, Any]], columns: Sequence[Column], *, empty: str = "") -> str:
    """Rows under upper-case headers, each column as wide as its widest cell, two spaces between.

    With no rows and ``empty`` given, prints that line instead of a bare header.
    """
    cells = [[text(get(row)) for _, get in columns] for row in rows]
    if not cells and empty:
        return empty + "\n"
    headers = [name for name, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
             for line in [headers, *cells]]
    return "\n".join(lines) + "\n"


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """``Name:  value`` lines, names padded to one width (the top of a ``show``)."""
    width = max((len(name) for name, _ in pairs), default=0) + 1
    return "".join(f"{(name + ':').ljust(width)}  {text(value)}\n" for name, value in pairs)


def emit(data: Any, output: str, render: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON, or as the text ``render`` makes of it."""
    if check_output(output) == "json":
        print_json(data)
    else:
        sys.stdout.write(render(data))


def trace_table(events: list[dict[str, Any]]) -> str:
    """Trace events (``t``, ``actor``, ``event``, ``reason`` and any extra fields), oldest first."""
    known = {"t", "actor", "event", "reason"}
    columns: list[Column] = [
        ("TIME", lambda e: clock(e.get("t"))),
        ("ACTOR", lambda e: e.get("actor")),
        ("EVENT", lambda e: e.get("event")),
        ("REASON", lambda e: e.get("reason")),
        ("DETAILS", lambda e: " ".join(f"{k}={text(v)}" for k, v in e.items() if k not in known)),
    ]
    return table(events, columns, empty="no events recorded")


# ---- progress --------------------------------------------------------------------------------------

class Progress:
    """One status line on stderr that changes in place on a terminal, or a new line per change otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._last = ""
        self._width = 0

    def show(self, line: str) -> None:
        if line == self._last:
            return
        self._last = line
        if self._tty:
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def done(self) -> None:
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()
