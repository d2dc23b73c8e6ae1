"""The job-file fields a pool's policy judges that the spec itself carries: ``capabilities`` and the
packages' optional ``sha256``."""

from __future__ import annotations

import pytest

from galaxy.spec import SpecError, load_job_text, parse_job
from tests.spec._jobs import VALID, with_field

DIGEST = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"


def test_capabilities_are_normalised_sorted_once_each_and_reach_to_dict() -> None:
    spec = parse_job(with_field("capabilities", ["net_raw", "CAP_NET_BIND_SERVICE", "NET_BIND_SERVICE"]))
    assert spec.capabilities == ("NET_BIND_SERVICE", "NET_RAW")
    assert spec.to_dict()["capabilities"] == ["NET_BIND_SERVICE", "NET_RAW"]
    assert parse_job(spec.to_dict()) == spec
    assert parse_job(VALID).capabilities == () and parse_job(VALID).to_dict()["capabilities"] == []
    assert parse_job(with_field("capabilities", None)).capabilities == ()


def test_sha256_is_lowercased_and_sent_in_the_program_dict() -> None:
    raw = with_field("program.sha256", DIGEST)
    raw = with_field("program.data.sha256", DIGEST.lower(), raw)
    spec = parse_job(raw)
    assert spec.program.sha256 == DIGEST.lower() and spec.program.data is not None
    assert spec.program.data.sha256 == DIGEST.lower()
    plain = spec.to_dict()
    assert plain["program"]["sha256"] == DIGEST.lower() and plain["program"]["data"]["sha256"] == DIGEST.lower()
    assert parse_job(plain) == spec
    assert parse_job(VALID).to_dict()["program"]["sha256"] is None


def test_a_digest_without_a_package_is_an_error() -> None:
    raw = with_field("program.sha256", DIGEST, with_field("program.package", None))
    with pytest.raises(SpecError) as caught:
        parse_job(raw)
    assert [(e.path, e.message) for e in caught.value.errors] == [
        ("program.sha256", "a digest needs a package to check: set program.package too")]


def test_yaml_with_both_fields_validates() -> None:
    text = f"""\
name: web
capabilities: [NET_BIND_SERVICE]
resources: {{cpu: 0.1, memory: 32Mi}}
program:
  version: "1"
  package: https://pkgs.example.com/web.tgz
  sha256: {DIGEST}
  start: ./web
"""
    spec = load_job_text(text, source="web.yaml")
    assert spec.capabilities == ("NET_BIND_SERVICE",) and spec.program.sha256 == DIGEST.lower()
