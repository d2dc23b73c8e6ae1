"""The validator's toolkit: read one field at a time, record what is wrong, carry on with the next.

Every leaf check is a function ``(value, path, ...) -> T`` that raises `SpecError`; `Reader.take`
catches it, records the error and returns a placeholder, so a section goes on to check its other
fields. Placeholders never escape: `parse_job` raises if anything was recorded.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from galaxy.spec._errors import ErrorList, SpecError, index, join
from galaxy.spec._rules import command_problem, name_problem, url_problem
from galaxy.spec._units import describe, format_bytes, format_duration, parse_bytes, parse_duration, shown

T = TypeVar("T")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` did you mean 'memory'?`` when a close choice exists, else the list of choices."""
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(options)}" if options else ""


class Reader:
    """Collects errors for one `parse_job` call."""

    def __init__(self) -> None:
        self.errors = ErrorList()

    def mark(self) -> int:
        return len(self.errors)

    def clean_since(self, mark: int) -> bool:
        return len(self.errors) == mark

    def error(self, path: str, message: str) -> None:
        self.errors.add(path, message)

    def take(self, check: Callable[..., T], fallback: T, value: Any, path: str, *args: Any) -> T:
        try:
            return check(value, path, *args)
        except SpecError as err:
            self.errors.extend(err)
            return fallback

    def field(self, section: Mapping[str, Any], key: str, path: str, check: Callable[..., T], default: T,
              *args: Any) -> T:
        """``section[key]`` through ``check`` when present, else ``default`` (a missing required key was
        already reported by `mapping`)."""
        if key not in section:
            return default
        return self.take(check, default, section[key], join(path, key), *args)

    def mapping(self, value: Any, path: str, known: tuple[str, ...], *, required: tuple[str, ...] = (),
                what: str = "a mapping", null_is_empty: bool = True) -> dict[str, Any] | None:
        """The known string keys of a mapping; unknown keys, non-string keys and missing ones are errors."""
        if value is None and null_is_empty:
            value = {}
        if not isinstance(value, Mapping):
            self.error(path, f"expected {what}, got {describe(value)}")
            return None
        found: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.error(join(path, shown(key, 30)), f"field names must be strings, got {describe(key)}")
            elif key not in known:
                self.error(join(path, key), f"unknown field {shown(key)}{did_you_mean(key, known)}")
            else:
                found[key] = item
        for key in required:
            if key not in found:
                self.error(join(path, key), "required")
        return found

    def items(self, value: Any, path: str, limit: int, what: str) -> list[tuple[str, Any]]:
        """(path, item) for each entry of a list; null is an empty list."""
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.error(path, f"expected a list of {what}, got {describe(value)}")
            return []
        if len(value) > limit:
            self.error(path, f"at most {limit} {what}, got {len(value)}")
            return []
        return [(index(path, i), item) for i, item in enumerate(value)]


def string(value: Any, path: str, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise SpecError.at(path, f"expected {what}, got {describe(value)}")
    if not is_utf8(value):
        raise SpecError.at(path, "must be valid Unicode text (it holds a lone surrogate)")
    return value


def is_utf8(text: str) -> bool:
    """Whether the text can be written as UTF-8: JSON escapes like \\ud800 make strings that cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def named(value: Any, path: str, pattern: re.Pattern[str], rule: str) -> str:
    text = string(value, path, rule)
    problem = name_problem(text, pattern, rule)
    if problem:
        raise SpecError.at(path, problem)
    return text


def choice(value: Any, path: str, options: tuple[str, ...]) -> str:
    text = string(value, path, "one of " + ", ".join(options))
    if text not in options:
        raise SpecError.at(path, f"unknown value {shown(text)}{did_you_mean(text, options)}")
    return text


def integer(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)  # JSON writers may emit 3.0 for 3
    else:
        raise SpecError.at(path, f"expected an integer from {lo} to {hi}, got {describe(value)}")
    if number < lo:
        raise SpecError.at(path, f"must be at least {lo}, got {shown(value)}")
    if number > hi:
        raise SpecError.at(path, f"must be at most {hi}, got {shown(value)}")
    return number


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError.at(path, f"expected true or false, got {describe(value)}")
    return value


def byte_size(value: Any, path: str, lo: int, hi: int) -> int:
    amount = parse_bytes(value, field=path)
    if amount < lo:
        raise SpecError.at(path, f"must be at least {format_bytes(lo)}, got {shown(value)}")
    if amount > hi:
        raise SpecError.at(path, f"must be at most {format_bytes(hi)}, got {shown(value)}")
    return amount


def duration(value: Any, path: str, lo: float, hi: float) -> float:
    seconds = parse_duration(value, field=path)
    if seconds < lo:
        raise SpecError.at(path, f"must be at least {format_duration(lo)}, got {shown(value)}")
    if seconds > hi:
        raise SpecError.at(path, f"must be at most {format_duration(hi)}, got {shown(value)}")
    return seconds


def command(value: Any, path: str) -> str:
    text = string(value, path, "a shell command (a string)")
    problem = command_problem(text)
    if problem:
        raise SpecError.at(path, problem)
    return text


def optional_command(value: Any, path: str) -> str | None:
    return None if value is None else command(value, path)


def url(value: Any, path: str) -> str:
    text = string(value, path, "a URL (file://, http:// or https://)")
    problem = url_problem(text)
    if problem:
        raise SpecError.at(path, problem)
    return text


def optional_url(value: Any, path: str) -> str | None:
    return None if value is None else url(value, path)
