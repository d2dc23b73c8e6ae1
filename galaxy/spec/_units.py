"""Quantities a job file writes with units: bytes (``1.5Gi``), durations (``1m30s``) and cpu (``500m``).

Numbers are parsed with `Decimal`, never float, so ``1.5Gi`` is exactly 1610612736 bytes and
``1m30.1s`` is not 90.09999. Every parser takes the field path so its error can name the field; each
raises `SpecError` and nothing else. The ``format_*`` functions are exact inverses
(``parse_bytes(format_bytes(n)) == n``), so normalised values can be shown with units and read back.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from galaxy.spec._errors import SpecError

MAX_BYTES = 2**63 - 1  # what an int64 (cgroup limit, CBOR, ZooKeeper) holds
MAX_DURATION = 10 * 365 * 86400.0  # ten years: anything longer is a typo
MAX_CPU = 1024.0  # cores in one container

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BYTE_UNITS: dict[str, int] = {"": 1, **_BINARY, **_DECIMAL}
_BYTES_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?) ?(?P<unit>[KMGTPE]i?)?B?")
BYTES_EXPECTED = ("bytes: an integer, or a number with a unit Ki Mi Gi Ti Pi (1024-based) "
                  "or K M G T P (1000-based), e.g. 256Mi, 1.5Gi, 512M")

_DURATION_UNITS: dict[str, Decimal] = {
    "d": Decimal(86400), "h": Decimal(3600), "m": Decimal(60), "s": Decimal(1),
    "ms": Decimal("0.001"), "us": Decimal("0.000001"),
}
_UNIT_ORDER = list(_DURATION_UNITS)
_DURATION_TOKEN = re.compile(r"([0-9]+(?:\.[0-9]+)?)(d|h|ms|us|m|s)")
DURATION_EXPECTED = "a duration such as 5s, 1m30s, 250ms or 2h (units d h m s ms us)"

_CPU_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<milli>m?)")
CPU_EXPECTED = f"cores: a number above 0 and at most {MAX_CPU:g}, e.g. 0.5, 2 or \"500m\""


def shown(value: object, limit: int = 60) -> str:
    """A short repr that never fails (ints over 4300 digits refuse `repr`) and never floods a message."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any object may come in; the message must still be written
        text = f"<{type_name(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: object) -> str:
    """The JSON/YAML name of a value's type, with the value when short: for 'expected X, got Y'."""
    kind = type_name(value)
    if value is None or isinstance(value, dict | list | tuple):
        return kind
    return f"{kind} {shown(value)}"


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def parse_bytes(value: object, *, field: str = "") -> int:
    """``256Mi``, ``1Gi``, ``512M``, ``4096``, ``1.5Gi`` (or a plain int) → whole bytes, >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError.at(field, f"expected {BYTES_EXPECTED}; got {describe(value)}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError.at(field, f"expected {BYTES_EXPECTED}; got {value}")
        if value < 0:
            raise SpecError.at(field, f"must not be negative, got {shown(value)}")
        if isinstance(value, float) and not value.is_integer():
            raise SpecError.at(field, f"must be a whole number of bytes, got {shown(value)}")
        amount = int(value)
    else:
        text = value.strip()
        if text.startswith("-"):
            raise SpecError.at(field, f"must not be negative, got {shown(value)}")
        match = _BYTES_RE.fullmatch(text)
        if match is None:
            raise SpecError.at(field, f"expected {BYTES_EXPECTED}; got {describe(value)}")
        exact = Fraction(match["num"]) * _BYTE_UNITS[match["unit"] or ""]
        if exact > MAX_BYTES:
            raise SpecError.at(field, f"too large: {shown(value)} is more than {MAX_BYTES} bytes")
        if exact.denominator != 1:
            raise SpecError.at(field, f"must be a whole number of bytes, {shown(value)} is {float(exact)}")
        amount = int(exact)
    if amount > MAX_BYTES:
        raise SpecError.at(field, f"too large: {shown(value)} is more than {MAX_BYTES} bytes")
    return amount


def format_bytes(amount: int) -> str:
    """The shortest exact spelling: 1073741824 → ``1Gi``, 1610612736 → ``1.5Gi``, 10**9 → ``1G``."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise SpecError.at("", f"format_bytes needs a whole number >= 0, got {describe(amount)}")
    candidates = [str(amount)]
    for unit, size in _BINARY.items():
        hundredths = Fraction(amount * 100, size)
        if amount >= size and hundredths.denominator == 1:
            whole, frac = divmod(int(hundredths), 100)
            digits = f"{whole}.{frac:02d}".rstrip("0").rstrip(".")
            candidates.append(f"{digits}{unit}")
    for unit, size in _DECIMAL.items():
        if amount >= size and amount % size == 0:
            candidates.append(f"{amount // size}{unit}")
    return min(candidates, key=len)


def parse_duration(value: object, *, field: str = "") -> float:
    """``5s``, ``1m30s``, ``250ms``, ``2h`` (or a number of seconds) → seconds, >= 0, to the microsecond.

    Units must come largest first, each once; a bare number in a string (``"5"``) is refused because
    nobody can tell whether it meant seconds or milliseconds.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError.at(field, f"expected {DURATION_EXPECTED}; got {describe(value)}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError.at(field, f"expected {DURATION_EXPECTED}; got {value}")
        if value < 0:
            raise SpecError.at(field, f"must not be negative, got {shown(value)}")
        seconds = Decimal(value)
    else:
        seconds = _parse_duration_text(value, field)
    if seconds > Decimal(MAX_DURATION):
        raise SpecError.at(field, f"too long: {shown(value)} is more than ten years")
    return round(float(seconds), 6)


def _parse_duration_text(value: str, field: str) -> Decimal:
    text = value.strip()
    if text.startswith("-"):
        raise SpecError.at(field, f"must not be negative, got {shown(value)}")
    if text == "0":
        return Decimal(0)
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        raise SpecError.at(field, f"{shown(value)} needs a unit: {DURATION_EXPECTED}")
    total = Decimal(0)
    pos = 0
    last_rank = -1
    for match in _DURATION_TOKEN.finditer(text):
        if match.start() != pos:
            break
        rank = _UNIT_ORDER.index(match[2])
        if rank <= last_rank:
            raise SpecError.at(field, f"{shown(value)}: units must go from largest to smallest, each once "
                                      f"(e.g. 1h30m, not 30m1h)")
        last_rank = rank
        total += Decimal(match[1]) * _DURATION_UNITS[match[2]]
        pos = match.end()
    if pos != len(text) or not text:
        raise SpecError.at(field, f"expected {DURATION_EXPECTED}; got {describe(value)}")
    return total


def format_duration(seconds: float) -> str:
    """Seconds → ``1m30s``, ``250ms``, ``1.5s``, ``0s``; `parse_duration` reads the result back exactly."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
            or seconds < 0:
        raise SpecError.at("", f"format_duration needs a number of seconds >= 0, got {describe(seconds)}")
    micros = round(seconds * 1_000_000)
    whole, frac_us = divmod(micros, 1_000_000)
    if whole == 0:
        if frac_us == 0:
            return "0s"
        if frac_us % 1000 == 0:
            return f"{frac_us // 1000}ms"
        if frac_us < 1000:
            return f"{frac_us}us"
        return f"{frac_us // 1000}.{frac_us % 1000:03d}".rstrip("0") + "ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or frac_us:
        secs = str(whole) if not frac_us else f"{whole}.{frac_us:06d}".rstrip("0")
        parts.append(f"{secs}s")
    return "".join(parts)


def parse_duration_range(value: object, *, field: str = "") -> tuple[float, float]:
    """``1s..60s`` (or ``{min: 1s, max: 60s}``, or one duration for both ends) → (lo, hi), lo <= hi."""
    if isinstance(value, dict):
        unknown = sorted(str(k) for k in value if k not in ("min", "max"))
        if unknown or "min" not in value or "max" not in value:
            raise SpecError.at(field, f"expected a range like 1s..60s or {{min: 1s, max: 60s}}; "
                                      f"got a mapping with keys {sorted(map(str, value))}")
        lo = parse_duration(value["min"], field=f"{field}.min")
        hi = parse_duration(value["max"], field=f"{field}.max")
    elif isinstance(value, str) and ".." in value:
        left, _, right = value.partition("..")
        lo = parse_duration(left, field=field)
        hi = parse_duration(right, field=field)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        lo = hi = parse_duration(value, field=field)
    else:
        raise SpecError.at(field, f"expected a range like 1s..60s; got {describe(value)}")
    if lo > hi:
        raise SpecError.at(field, f"range {format_duration(lo)}..{format_duration(hi)} has its lower end "
                                  f"above its upper end")
    return lo, hi


def parse_cpu(value: object, *, field: str = "") -> float:
    """``0.5``, ``2``, ``"500m"`` → cores, rounded to the millicore; above 0 and at most `MAX_CPU`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError.at(field, f"expected {CPU_EXPECTED}; got {describe(value)}")
    if isinstance(value, str):
        match = _CPU_RE.fullmatch(value.strip())
        if match is None:
            raise SpecError.at(field, f"expected {CPU_EXPECTED}; got {describe(value)}")
        cores = Decimal(match["num"]) / (1000 if match["milli"] else 1)
    else:
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError.at(field, f"expected {CPU_EXPECTED}; got {value}")
        try:
            cores = Decimal(value)
        except (InvalidOperation, ValueError) as exc:  # pragma: no cover - finite numbers always convert
            raise SpecError.at(field, f"expected {CPU_EXPECTED}; got {shown(value)}") from exc
    if cores <= 0:
        raise SpecError.at(field, f"must be above 0 cores, got {shown(value)}")
    if cores > Decimal(MAX_CPU):
        raise SpecError.at(field, f"at most {MAX_CPU:g} cores, got {shown(value)}")
    millis = cores.quantize(Decimal("0.001"))
    if millis <= 0:
        raise SpecError.at(field, f"must be at least 1m (0.001 cores), got {shown(value)}")
    return float(millis)
