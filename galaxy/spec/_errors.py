"""Errors of the job file: every problem is a `FieldError` naming its field path; one `SpecError` holds them all.

A user fixing a job file wants every mistake at once, each pointing at the field to change, so the
validator collects `FieldError`s and raises a single `SpecError` at the end. `SpecError` is an
`InvalidInput`, so it crosses the mesh as code ``invalid`` with the first path as ``field`` and every
error, one per line, as the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from galaxy.errors import InvalidInput


@dataclass(frozen=True)
class FieldError:
    """One problem: ``path`` is the field (``resources.disks[0].size``; empty for the file as a whole)."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where = f"{where} (line {self.line})" if where else f"line {self.line}"
        return f"{where}: {self.message}" if where else self.message


class SpecError(InvalidInput):
    """A job file (or one value of it) is invalid; ``errors`` lists every problem found, in file order."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        found = list(errors)
        if not found:
            found = [FieldError("", "invalid job file")]
        self.errors: list[FieldError] = found
        super().__init__("\n".join(str(e) for e in found), field=found[0].path or None)

    @classmethod
    def at(cls, path: str, message: str) -> SpecError:
        """One error at one field: what the unit parsers raise."""
        return cls([FieldError(path, message)])

    def with_lines(self, lines: dict[str, int]) -> SpecError:
        """The same errors, each annotated with the source line of its field (or nearest known parent)."""
        annotated = []
        for err in self.errors:
            line = err.line if err.line is not None else _line_of(err.path, lines)
            annotated.append(replace(err, line=line))
        annotated.sort(key=lambda e: e.line if e.line is not None else 1 << 30)  # file order (stable)
        return SpecError(annotated)

    def __str__(self) -> str:
        return self.message


def _line_of(path: str, lines: dict[str, int]) -> int | None:
    """Walk up ``a.b[2].c`` → ``a.b[2]`` → ``a.b`` → ``a`` until a path with a known line is found."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            return None
        path = path[:cut]
    return None


class ErrorList:
    """Collects errors while a job is read; `raise_if_any` turns them into one `SpecError`."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldError(path, message))

    def extend(self, err: SpecError) -> None:
        self.items.extend(err.errors)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def join(path: str, key: str) -> str:
    """``join("resources", "memory")`` → ``resources.memory``; the top level has no prefix."""
    return f"{path}.{key}" if path else key


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"
