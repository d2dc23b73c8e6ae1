"""Reading job files: YAML tricks refused clearly, JSON accepted, lines reported, files checked."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from galaxy.spec import MAX_TEXT, SpecError, dump_yaml, load_job_file, load_job_text, parse_job
from tests.spec._jobs import VALID

GOOD_YAML = dump_yaml(VALID)

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def spec_error(text: str, source: str = "<string>") -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_job_text(text, source=source)
    return caught.value


def test_yaml_and_json_give_the_same_job() -> None:
    assert load_job_text(GOOD_YAML) == load_job_text(json.dumps(VALID)) == parse_job(VALID)
    assert load_job_text(json.dumps(VALID), source="x.json") == parse_job(VALID)


def test_billion_laughs_is_refused() -> None:
    err = spec_error(BILLION_LAUGHS)
    assert "YAML bomb" in str(err)


def test_alias_expansion_is_bounded_below_the_alias_limit() -> None:
    levels = BILLION_LAUGHS.splitlines()[:6]  # 45 aliases, 9**6 = 531441 values once expanded
    assert "more than 10000 values once aliases are expanded" in str(spec_error("\n".join(levels) + "\n"))


def test_too_many_aliases_are_refused() -> None:
    text = "x: &x 1\ny: [" + ", ".join(["*x"] * 65) + "]\n"
    assert "more than 64 aliases" in str(spec_error(text))


def test_recursive_alias_is_refused() -> None:
    assert "its own anchor" in str(spec_error("a: &a [1, *a]\n"))
    assert "its own anchor" in str(spec_error("a: &a {b: 1, <<: *a}\n"))


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    assert "nested deeper than 32" in str(spec_error("[" * 100_000))
    assert "nested deeper than 32" in str(spec_error("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40))))
    assert "nested deeper than 32" in str(spec_error("{\"a\": " * 50 + "1" + "}" * 50))


def test_oversized_text_is_refused() -> None:
    text = GOOD_YAML + "# " + "x" * MAX_TEXT + "\n"
    assert "larger than 1024 KiB" in str(spec_error(text))


def test_multiple_documents_are_refused() -> None:
    err = spec_error(GOOD_YAML + "---\n" + GOOD_YAML)
    assert "more than one YAML document" in str(err)
    assert err.errors[0].line == GOOD_YAML.count("\n") + 1


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_top_level_is_refused(text: str) -> None:
    assert "mapping of job fields at the top level" in str(spec_error(text))


def test_empty_file_is_refused() -> None:
    assert "empty" in str(spec_error(""))
    assert "empty" in str(spec_error("# only a comment\n"))


def test_duplicate_keys_name_the_field_and_line() -> None:
    text = GOOD_YAML.replace("replicas: 2\n", "replicas: 2\nreplicas: 5\n")
    err = spec_error(text)
    assert [(e.path, e.line) for e in err.errors] == [("replicas", GOOD_YAML.splitlines().index("replicas: 2") + 2)]
    assert "duplicate key" in err.errors[0].message
    assert "duplicate key 'name'" in str(spec_error('{"name": "a", "name": "b"}'))


@pytest.mark.parametrize(("tag", "shown"), [
    ("!!python/object/apply:os.system ['true']", "tag:yaml.org,2002:python/object/apply:os.system"),
    ("!custom x", "!custom"), ("!!binary aGk=", "binary"), ("!!set {a, b}", "set"),
    ("!!timestamp 2024-01-01", "timestamp"),
])
def test_foreign_tags_are_refused(tag: str, shown: str) -> None:
    err = spec_error(f"name: web\nreplicas: {tag}\n")
    assert err.errors[0].path == "replicas"
    assert "is not allowed" in err.errors[0].message and shown in err.errors[0].message


def test_standard_explicit_tags_are_fine() -> None:
    spec = load_job_text(GOOD_YAML.replace("replicas: 2", "replicas: !!int '7'"))
    assert spec.replicas == 7


def test_yaml_12_scalars() -> None:
    text = GOOD_YAML.replace("  - ssd\n", "  - 'no'\n  - on\n  - yes\n  - 2024-01-01\n")
    spec = load_job_text(text)
    assert spec.resources.labels == ("2024-01-01", "no", "on", "yes")
    err = spec_error(GOOD_YAML.replace("pause_between: 5s", "pause_between: 1:30"))
    assert err.errors[0].path == "update.pause_between" and "duration" in err.errors[0].message
    assert load_job_text(GOOD_YAML.replace("replicas: 2", "replicas: 08")).replicas == 8
    assert load_job_text(GOOD_YAML.replace("replicas: 2", "replicas: 0x10")).replicas == 16


def test_merge_keys_are_allowed() -> None:
    text = """\
x-defaults: &base {cpu: 1, memory: 64Mi}
"""
    err = spec_error(text)  # x-defaults is not a field: merges work, unknown keys still fail
    assert err.errors[0].path == "x-defaults"
    job = {"name": "web", "program": {"version": "1", "start": "true"}}
    merged = dump_yaml(job) + "resources:\n  <<: {cpu: 1, memory: 64Mi}\n  memory: 128Mi\n"
    assert load_job_text(merged).resources.memory == 128 * 2**20


def test_field_errors_carry_their_line() -> None:
    text = "name: web\nresources:\n  cpu: 1\n  memory: lots\nprogram:\n  version: '1'\n  start: x\n"
    err = spec_error(text)
    assert str(err.errors[0]).startswith("resources.memory (line 4): expected bytes")


def test_syntax_errors_carry_their_line() -> None:
    err = spec_error("name: web\nresources: {cpu: 1\nprogram: x\n")
    assert err.errors[0].path == "" and err.errors[0].line is not None
    assert str(err).startswith("line ") and "invalid YAML" in str(err)
    assert "invalid JSON" in str(spec_error('{"name": }', source="job.json"))


def test_control_characters_and_json_constants_are_refused() -> None:
    assert "invalid YAML" in str(spec_error("name: \x07web\n"))
    assert "NaN is not a number" in str(spec_error('{"name": NaN}'))
    lone = json.dumps(VALID).replace('"./web --reload"', '"\\ud800"')
    assert "program.data.reload: must be valid Unicode text" in str(spec_error(lone))


@pytest.fixture
def job_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_load_job_file(job_dir: Path) -> None:
    path = job_dir / "web.yaml"
    path.write_text(GOOD_YAML)
    assert load_job_file(path) == parse_job(VALID)
    (job_dir / "web.json").write_text(json.dumps(VALID))
    assert load_job_file(str(job_dir / "web.json")) == parse_job(VALID)
    (job_dir / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + GOOD_YAML.encode())
    assert load_job_file(job_dir / "bom.yaml") == parse_job(VALID)


def test_unreadable_files_give_one_clear_error(job_dir: Path) -> None:
    cases = {
        job_dir / "missing.yaml": "no such file",
        job_dir: "a directory",
    }
    big = job_dir / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_TEXT + 1)
    cases[big] = "larger than"
    latin = job_dir / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    cases[latin] = "not UTF-8"
    fifo = job_dir / "fifo.yaml"
    os.mkfifo(fifo)
    cases[fifo] = "not a regular file"
    for path, words in cases.items():
        with pytest.raises(SpecError) as caught:
            load_job_file(path)
        assert len(caught.value.errors) == 1 and words in str(caught.value), (path, str(caught.value))
        assert str(path) in str(caught.value)
