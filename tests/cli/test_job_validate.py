"""``galaxy job validate`` and ``galaxy job template`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from galaxy.cli.main import main
from galaxy.spec import TEMPLATE, load_job_file, load_job_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BAD_JOB = """\
name: Web
resources:
  cpu: 0
  memroy: 1Gi
program:
  version: "1"
  start: ./web
  health: {tcp: http}
"""


def test_validate_prints_the_normalised_job(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "validate", str(EXAMPLES / "web.yaml")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    printed = yaml.safe_load(out)
    assert printed == load_job_file(EXAMPLES / "web.yaml").to_dict()
    assert printed["resources"]["memory"] == 64 * 2**20 and printed["pool"] == "default"


def test_validate_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "validate", str(EXAMPLES / "batch.yaml"), "--output", "json"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == load_job_file(EXAMPLES / "batch.yaml").to_dict()


def test_normalised_output_validates_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "validate", str(EXAMPLES / "web.yaml")]) == 0
    again = tmp_path / "web-normalised.yaml"
    again.write_text(capsys.readouterr().out)
    assert main(["job", "validate", str(again)]) == 0
    assert load_job_file(again) == load_job_file(EXAMPLES / "web.yaml")


def test_validate_lists_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_JOB)
    assert main(["job", "validate", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("name (line 1): 'Web' is not a DNS label")
    assert any(line.startswith("resources.memory (line 2): required") for line in lines)
    assert any(line.startswith("resources.cpu (line 3): must be above 0") for line in lines)
    assert any("resources.memroy (line 4): unknown field 'memroy'; did you mean 'memory'?" in line
               for line in lines)
    assert lines[-1] == "program.health.tcp (line 8): no port named 'http' in resources.ports (the job asks for no ports)"
    assert len(lines) == 5


def test_validate_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["job", "validate", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"cannot read {missing}: no such file\n"


def test_validate_refuses_unknown_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "validate", str(EXAMPLES / "web.yaml"), "--output", "xml"]) == 1
    assert "output" in capsys.readouterr().err


def test_template_prints_a_valid_job(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "template"]) == 0
    out, _ = capsys.readouterr()
    assert out == TEMPLATE
    assert load_job_text(out).name == "web"
