"""Offline parts of the CLI: human units, tables, the `--` split of `job exec`, completion, `config init`."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxy.cli.main import split_exec
from galaxy.cli.output import human_age, human_bytes, human_cpu, table
from galaxy.sdk import load_config
from tests.cli.conftest import Run


@pytest.mark.parametrize(("amount", "shown"), [
    (1610612736, "1.5Gi"), (64 << 20, "64Mi"), (512, "512B"), (1 << 40, "1Ti"), (None, "-"), (True, "-")])
def test_human_bytes(amount: object, shown: str) -> None:
    assert human_bytes(amount) == shown


@pytest.mark.parametrize(("cores", "shown"), [(0.5, "500m"), (2.0, "2"), (1.25, "1.25"), (0, "0"), (None, "-")])
def test_human_cpu(cores: object, shown: str) -> None:
    assert human_cpu(cores) == shown


def test_human_age() -> None:
    assert [human_age(1e9 - s, now=1e9) for s in (5, 125, 7200, 3 * 86400)] == ["5s", "2m", "2h", "3d"]
    assert human_age(None) == "-"


def test_table_pads_columns_and_marks_missing_cells() -> None:
    out = table([{"a": "x", "b": None}, {"a": "longer", "b": ["p", "q"]}],
                [("A", lambda r: r["a"]), ("LIST", lambda r: r["b"])])
    assert out == "A       LIST\nx       -\nlonger  p,q\n"
    assert table([], [("A", lambda r: r)], empty="nothing") == "nothing\n"


@pytest.mark.parametrize(("argv", "split"), [
    (["job", "exec", "web", "--", "ls", "-l"], (["job", "exec", "web"], ["ls", "-l"])),
    (["job", "exec", "web", "--timeout", "3", "--", "sh", "-c", "a -- b"],
     (["job", "exec", "web", "--timeout", "3"], ["sh", "-c", "a -- b"])),
    (["job", "exec", "--", "--help"], (["job", "exec", "--", "--help"], None)),
    (["job", "list", "--", "--help"], (["job", "list", "--", "--help"], None)),
])
def test_split_exec(argv: list[str], split: tuple[list[str], list[str] | None]) -> None:
    assert split_exec(argv) == split


def test_shell_completion_knows_the_nouns_and_verbs(run: Run) -> None:
    code, out, _ = run("--", "--completion")
    assert code == 0 and "_complete-galaxy" in out
    for word in ("job", "pod", "agent", "status", "submit", "drain", "logs"):
        assert word in out


def test_config_init_writes_a_loadable_file(run: Run, tmp_path: Path, clean_env: None) -> None:
    target = tmp_path / "cfg"
    code, out, _ = run("config", "init", "--cluster", "prod", "--zookeeper", "zk:2181", "--key",
                       str(tmp_path / "me.key"), "--path", str(target))
    assert (code, out) == (0, f"wrote {target}\n")
    assert load_config(target, env={}).cluster == "prod"
    assert run("config", "init", "--cluster", "x", "--zookeeper", "z", "--key", "k", "--path", str(target))[2] == \
        f"error: path: {target} exists; pass --force to replace it\n"
