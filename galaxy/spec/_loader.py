"""Reading a job file: YAML or JSON text → plain data → `parse_job`, refusing documents built to hurt.

A job file comes from users, so the reader is hardened before anything is built from it:

- at most `MAX_TEXT` bytes, exactly one document, nested at most `MAX_DEPTH` levels;
- at most `MAX_ALIASES` aliases and `MAX_NODES` values once aliases are expanded (a "billion laughs"
  file is 90 aliases that expand to 10**9 values), and no alias inside its own anchor;
- only the JSON-like tags (str, int, float, bool, null, seq, map; ``<<`` merges) — a
  ``!!python/object`` or a custom ``!tag`` is an error, never a constructor call;
- duplicate keys are errors (YAML and JSON both keep the last one silently);
- YAML 1.2 scalars: only true/false are booleans (``no`` stays the string "no"), ``1:30`` is not
  5400, ``2024-01-01`` is not a date, ``08`` is 8.

Each field error carries the line it came from, so ``galaxy job validate`` can point at it.

PyYAML is imported on the first YAML read or dump, not with this module: ``galaxy.spec``'s model is
used by processes that never read a job file, and the loader costs them ~15 ms of start-up.
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from galaxy.spec._errors import FieldError, SpecError, index, join
from galaxy.spec._model import JobSpec
from galaxy.spec._validate import parse_job

if TYPE_CHECKING:
    import yaml
    from yaml.nodes import Node, ScalarNode

MAX_TEXT = 1024 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 64
MAX_NODES = 10_000

_TAG = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))
MERGE_TAG = _TAG + "merge"


class _JsonSyntax(SpecError):
    """The text is not JSON at all: it may still be YAML flow style (``{name: web}``)."""


class _Refused(Exception):
    """A document refused while it is being composed; becomes one `FieldError`."""

    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.line = None if mark is None else mark.line + 1


def _yaml12_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers with YAML 1.1's surprises replaced by YAML 1.2 core rules."""
    import yaml

    dropped = {_TAG + t for t in ("bool", "int", "float", "timestamp", "value")}
    table = {first: [(tag, rx) for tag, rx in rules if tag not in dropped]
             for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    extra = [
        (_TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
        (_TAG + "int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
        (_TAG + "float", re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), "-+0123456789."),
    ]
    for tag, rx, firsts in extra:
        for first in firsts:
            table.setdefault(first, []).append((tag, rx))
    return {k: v for k, v in table.items() if v}


@functools.cache
def _yaml_classes() -> tuple[type[yaml.SafeLoader], type[yaml.SafeDumper]]:
    """(JobLoader, JobDumper), built on first use so importing this module does not import PyYAML."""
    import yaml

    class JobLoader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 scalars and bounds on depth and aliases while composing."""

        yaml_implicit_resolvers = _yaml12_resolvers()

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0
            self._aliases = 0

        def compose_node(self, parent: Node | None, index: Any) -> Node:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise _Refused(f"more than {MAX_ALIASES} aliases (a YAML bomb?)", self.peek_event().start_mark)
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
                node: Node = super().compose_node(parent, index)
                return node
            finally:
                self._depth -= 1

    class JobDumper(yaml.SafeDumper):
        """SafeDumper that quotes any string either YAML 1.1 or this loader's YAML 1.2 rules would misread,
        so what `dump_yaml` writes (``"0o17"``, ``"1e3"``, ``"no"``) reads back as the same strings."""

    JobDumper.yaml_implicit_resolvers = {
        first: list(yaml.SafeDumper.yaml_implicit_resolvers.get(first, [])) + list(rules)
        for first, rules in {**yaml.SafeDumper.yaml_implicit_resolvers, **JobLoader.yaml_implicit_resolvers}.items()
    }

    for tag, construct in _constructors.items():
        JobLoader.add_constructor(tag, construct)
    return JobLoader, JobDumper


def dump_yaml(data: Any) -> str:
    """Plain data as block YAML, field order kept, that `load_job_text` reads back unchanged."""
    import yaml

    return yaml.dump(data, Dumper=_yaml_classes()[1], sort_keys=False, default_flow_style=False)


def _construct_int(loader: yaml.SafeLoader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)


def _construct_float(loader: yaml.SafeLoader, node: ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


def _construct_bool(loader: yaml.SafeLoader, node: ScalarNode) -> bool:
    text = str(loader.construct_scalar(node)).lower()
    if text not in ("true", "false"):
        import yaml

        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not true or false", node.start_mark)
    return text == "true"


_constructors: dict[str, Callable[[yaml.SafeLoader, ScalarNode], Any]] = {
    _TAG + "int": _construct_int, _TAG + "float": _construct_float, _TAG + "bool": _construct_bool}


def _audit(loader: yaml.SafeLoader, root: Node) -> dict[str, int]:
    """Walk the expanded document once: refuse bombs, cycles and foreign tags, find duplicate keys,
    and return the source line of every field path."""
    from yaml.nodes import MappingNode, SequenceNode

    lines: dict[str, int] = {}
    problems: list[FieldError] = []
    checked: set[int] = set()
    visited = 0
    # (node, path, ancestors ids): ancestors catch an alias inside its own anchor.
    stack: list[tuple[Node, str, frozenset[int]]] = [(root, "", frozenset())]
    while stack:
        node, path, ancestors = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values once aliases are expanded (a YAML bomb?)")
        if id(node) in ancestors:
            raise _Refused("an alias refers to its own anchor (a recursive document)", node.start_mark)
        if len(ancestors) > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded", node.start_mark)
        lines.setdefault(path, node.start_mark.line + 1)
        first_visit = id(node) not in checked
        checked.add(id(node))
        if first_visit and node.tag not in ALLOWED_TAGS:
            problems.append(FieldError(path, f"tag {node.tag!r} is not allowed: a job file holds only strings, "
                                             f"numbers, booleans, null, lists and mappings",
                                       node.start_mark.line + 1))
            continue
        inner = ancestors | {id(node)}
        if isinstance(node, SequenceNode):
            stack.extend((child, index(path, i), inner) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG:
                    merged = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                    stack.extend((m, path, inner) for m in merged)
                    continue
                key = _key(loader, key_node)
                child_path = join(path, str(key)) if isinstance(key, str | int | float | bool) else path
                if first_visit and key is not None and key in seen:
                    problems.append(FieldError(child_path, "duplicate key (each field may appear once)",
                                               key_node.start_mark.line + 1))
                seen.add(key)
                stack.append((value_node, child_path, inner))
                stack.append((key_node, child_path, inner))  # popped first: a field's line is its key's
    if problems:
        raise SpecError(sorted(problems, key=lambda e: e.line or 0))
    return lines


def _key(loader: yaml.SafeLoader, node: Node) -> Any:
    import yaml
    from yaml.nodes import ScalarNode

    if not isinstance(node, ScalarNode) or node.tag not in ALLOWED_TAGS:
        return None
    try:
        key = loader.construct_object(node)
    except (yaml.YAMLError, ValueError):
        return None
    return key if isinstance(key, str | int | float | bool) else None


def _yaml_error(exc: yaml.YAMLError) -> SpecError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"invalid YAML: {context + ', ' if context else ''}{problem}"
    return SpecError([FieldError("", text, None if mark is None else mark.line + 1)])


def parse_yaml(text: str) -> tuple[Any, dict[str, int]]:
    """(plain data, field path → line) of one YAML document, within the bounds above."""
    import yaml

    try:
        loader = _yaml_classes()[0](text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise _yaml_error(exc) from None
    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            raise SpecError.at("", "the job file is empty")
        root = loader.compose_document()
        if not loader.check_event(yaml.StreamEndEvent):
            raise SpecError([FieldError("", "more than one YAML document ('---'): a job file holds one job",
                                        loader.peek_event().start_mark.line + 1)])
        lines = _audit(loader, root)
        data = loader.construct_document(root)
    except _Refused as exc:
        raise SpecError([FieldError("", f"refused: {exc}", exc.line)]) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    except (ValueError, RecursionError, OverflowError) as exc:
        raise SpecError.at("", f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def parse_json(text: str) -> Any:
    """Plain data of a JSON document; duplicate keys, NaN/Infinity and deep nesting are refused."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in items:
            if key in found:
                raise _Refused(f"duplicate key {key!r} (each field may appear once)")
            found[key] = value
        return found

    def constant(name: str) -> Any:
        raise _Refused(f"{name} is not a number a job file may hold")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except _Refused as exc:
        raise SpecError.at("", f"invalid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _JsonSyntax([FieldError("", f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno)]) from None
    except (ValueError, RecursionError) as exc:
        raise SpecError.at("", f"invalid JSON: {exc}") from None
    _check_json_shape(data)
    return data


def _check_json_shape(data: Any) -> None:
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise SpecError.at("", f"refused: nested deeper than {MAX_DEPTH} levels")
        if count > MAX_NODES:
            raise SpecError.at("", f"refused: more than {MAX_NODES} values")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def load_job_text(text: str, *, source: str = "<string>") -> JobSpec:
    """A job from YAML or JSON text (JSON when ``source`` ends in .json or the text is a JSON object)."""
    if not isinstance(text, str):
        raise SpecError.at("", f"expected the job file's text as a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT:
        raise SpecError.at("", f"{source}: larger than {MAX_TEXT // 1024} KiB; a job file is small")
    text = text.removeprefix("\ufeff")
    lines: dict[str, int] = {}
    if source.lower().endswith(".json"):
        data = parse_json(text)
    elif text.lstrip().startswith("{"):
        try:
            data = parse_json(text)
        except _JsonSyntax:
            data, lines = parse_yaml(text)  # YAML flow style: {name: web, ...}
    else:
        data, lines = parse_yaml(text)
    try:
        return parse_job(data)
    except SpecError as err:
        raise err.with_lines(lines) from None


def load_job_file(path: str | os.PathLike[str]) -> JobSpec:
    """A job from a file; a missing, unreadable, oversized or non-UTF-8 file is a `SpecError` too."""
    where = os.fspath(path)
    try:
        info = os.stat(where)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SpecError.at("", f"cannot read {where}: {kind}")
        if info.st_size > MAX_TEXT:
            raise SpecError.at("", f"{where}: larger than {MAX_TEXT // 1024} KiB; a job file is small")
        with Path(where).open("rb") as handle:
            raw = handle.read(MAX_TEXT + 1)
    except FileNotFoundError:
        raise SpecError.at("", f"cannot read {where}: no such file") from None
    except OSError as exc:
        raise SpecError.at("", f"cannot read {where}: {exc.strerror or exc}") from None
    if len(raw) > MAX_TEXT:
        raise SpecError.at("", f"{where}: larger than {MAX_TEXT // 1024} KiB; a job file is small")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError.at("", f"{where}: not UTF-8 text (bad byte at offset {exc.start})") from None
    return load_job_text(text, source=where)
