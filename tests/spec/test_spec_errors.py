"""Each bad field gives its own error, naming the field path and what was expected."""

from __future__ import annotations

from typing import Any

import pytest

from galaxy.errors import InvalidInput
from galaxy.spec import SpecError, parse_job
from tests.spec._jobs import DELETE, VALID, with_field

# (field to change, bad value, path the error must name, words the message must contain)
CASES: list[tuple[str, Any, str, str]] = [
    # job identity
    ("name", "Web", "name", "DNS label"),
    ("name", "web_1", "name", "DNS label"),
    ("name", "a" * 64, "name", "DNS label"),
    ("name", "web-", "name", "DNS label"),
    ("name", 5, "name", "got integer 5"),
    ("name", DELETE, "name", "required"),
    ("type", "servce", "type", "did you mean 'service'"),
    ("type", "daemon", "type", "service, batch, best-effort"),
    ("pool", "Pool_1", "pool", "DNS label"),
    ("replicas", -1, "replicas", "at least 0"),
    ("replicas", 1_000_000, "replicas", "at most 100000"),
    ("replicas", True, "replicas", "got boolean"),
    ("replicas", "3", "replicas", "expected an integer"),
    ("max_per_host", 0, "max_per_host", "at least 1"),
    ("user", "Root!", "user", "POSIX user name"),
    ("user", "1abc", "user", "POSIX user name"),
    ("user", "a" * 33, "user", "POSIX user name"),
    ("replica", 3, "replica", "did you mean 'replicas'"),
    ("env", {"GALAXY_PORT_X": "1"}, "env.GALAXY_PORT_X", "set by Galaxy"),
    ("env", {"1A": "x"}, "env.1A", "environment variable name"),
    ("env", {"A": ["x"]}, "env.A", "expected a string"),
    ("env", {"A": True}, "env.A", "quote numbers and booleans"),
    ("env", ["A=1"], "env", "expected a mapping"),
    ("env", {"A": {"secret": 3.5}}, "env.A.secret", "expected a string"),
    ("env", {"A": {"secrit": "x"}}, "env.A", "{secret: string}, got keys secrit"),
    ("env", {"A": {"secret": "x", "b": 1}}, "env.A", "{secret: string}"),
    # resources
    ("resources", DELETE, "resources", "required"),
    ("resources", None, "resources", "got null"),
    ("resources.cpu", 0, "resources.cpu", "above 0"),
    ("resources.cpu", "lots", "resources.cpu", "cores"),
    ("resources.cpu", 5000, "resources.cpu", "at most 1024"),
    ("resources.cpu", "500x", "resources.cpu", "500m"),
    ("resources.cpu", float("nan"), "resources.cpu", "cores"),
    ("resources.cpu", "0.0001", "resources.cpu", "at least 1m"),
    ("resources.cpu_excess", "yes", "resources.cpu_excess", "true or false"),
    ("resources.memory", "1.5.2Gi", "resources.memory", "Ki Mi Gi"),
    ("resources.memory", "256Mb", "resources.memory", "Ki Mi Gi"),
    ("resources.memory", 0, "resources.memory", "at least 4Mi"),
    ("resources.memory", "-1Gi", "resources.memory", "negative"),
    ("resources.memory", -5, "resources.memory", "negative"),
    ("resources.memory", "1.5", "resources.memory", "whole number of bytes"),
    ("resources.memory", "100Ti", "resources.memory", "at most 16Ti"),
    ("resources.memory", DELETE, "resources.memory", "required"),
    ("resources.memroy", "1Gi", "resources.memroy", "did you mean 'memory'"),
    ("resources.disks", "ssd", "resources.disks", "expected a list of disks"),
    ("resources.disks[0].size", "0", "resources.disks[0].size", "at least 1Mi"),
    ("resources.disks[0].size", "lots", "resources.disks[0].size", "bytes"),
    ("resources.disks[0].size", DELETE, "resources.disks[0].size", "required"),
    ("resources.disks[0].medium", "SSD!", "resources.disks[0].medium", "lowercase identifier"),
    ("resources.disks[0].path", "data", "resources.disks[0].path", "absolute path"),
    ("resources.disks[0].path", "/", "resources.disks[0].path", "must not be '/'"),
    ("resources.disks[0].path", "/proc/x", "resources.disks[0].path", "/proc, /sys or /dev"),
    ("resources.disks[0].path", "/dev", "resources.disks[0].path", "/proc, /sys or /dev"),
    ("resources.disks[0].path", "/data/../etc", "resources.disks[0].path", "'..'"),
    ("resources.disks[0].path", "/etc/ssl/certs", "resources.mounts[0].path", "overlaps"),
    ("resources.disks[0].sise", "1Gi", "resources.disks[0].sise", "did you mean 'size'"),
    ("resources.mounts[0].path", "/data/x", "resources.mounts[0].path", "overlaps"),
    ("resources.mounts[0].host", "etc/ssl", "resources.mounts[0].host", "absolute path"),
    ("resources.mounts[0].host", "/", "resources.mounts[0].host", "whole host"),
    ("resources.mounts[0].readonly", "no", "resources.mounts[0].readonly", "true or false"),
    ("resources.ports[1].name", "http", "resources.ports[1].name", "duplicate port name 'http'"),
    ("resources.ports[0].name", "HTTP", "resources.ports[0].name", "port name"),
    ("resources.ports[0].name", "1http", "resources.ports[0].name", "starting with a letter"),
    ("resources.ports[1].port", 0, "resources.ports[1].port", "at least 1"),
    ("resources.ports[1].port", 65536, "resources.ports[1].port", "at most 65535"),
    ("resources.ports", [{"name": "a", "port": 80}, {"name": "b", "port": 80}], "resources.ports[1].port",
     "port 80 is also asked for by resources.ports[0]"),
    ("resources.labels", ["ssd", "ssd"], "resources.labels[1]", "duplicate label"),
    ("resources.labels", ["SSD"], "resources.labels[0]", "label"),
    ("resources.labels", "ssd", "resources.labels", "expected a list of labels"),
    # program
    ("program", DELETE, "program", "required"),
    ("program.version", "", "program.version", "version"),
    ("program.version", 1.5, "program.version", "quote versions"),
    ("program.version", "has space", "program.version", "version"),
    ("program.start", "", "program.start", "must not be empty"),
    ("program.start", DELETE, "program.start", "required"),
    ("program.start", ["./web"], "program.start", "shell command"),
    ("program.package", "ftp://x/y", "program.package", "file://, http:// or https://"),
    ("program.package", "file://host/x.tgz", "program.package", "local path"),
    ("program.package", "https://", "program.package", "no host"),
    ("program.package", "/srv/pkg/web.tgz", "program.package", "file://, http:// or https://"),
    ("program.health", {"tcp": "web"}, "program.health.tcp", "no port named 'web'"),
    ("program.health", {"tcp": "htp"}, "program.health.tcp", "did you mean 'http'"),
    ("program.health", {"tcp": "http", "command": "x"}, "program.health", "exactly one"),
    ("program.health", {}, "program.health", "exactly one"),
    ("program.health", {"command": "./check", "interval": "0s"}, "program.health.interval", "at least 1ms"),
    ("program.health", "tcp", "program.health", "expected {tcp"),
    ("program.data", {"reload": "x"}, "program.data.package", "required"),
    ("program.data.package", "s3://b/k", "program.data.package", "file://, http:// or https://"),
    ("program.sha256", "abc", "program.sha256", "64 hexadecimal digits"),
    ("program.sha256", "g" * 64, "program.sha256", "64 hexadecimal digits"),
    ("program.sha256", 5, "program.sha256", "SHA-256"),
    ("program.data.sha256", "0" * 63, "program.data.sha256", "64 hexadecimal digits"),
    ("program.data.sha265", "0" * 64, "program.data.sha265", "did you mean 'sha256'"),
    # capabilities
    ("capabilities", ["NET_BIND_SERVICE", "CAP_NOPE"], "capabilities[1]", "unknown capability 'CAP_NOPE'"),
    ("capabilities", "NET_BIND_SERVICE", "capabilities", "expected a list of capability names"),
    ("capabilities", [7], "capabilities[0]", "capability name"),
    ("capabilites", [], "capabilites", "did you mean 'capabilities'"),
    # update and restart
    ("update.step", 0, "update.step", "at least 1"),
    ("update.step", "0%", "update.step", "1% to 100%"),
    ("update.step", "abc", "update.step", "percentage"),
    ("update.pause_between", "5", "update.pause_between", "needs a unit"),
    ("update.pause_between", "-5s", "update.pause_between", "negative"),
    ("update.pause_between", "5 sec", "update.pause_between", "duration"),
    ("update.pause_between", "30s1m", "update.pause_between", "largest to smallest"),
    ("update.max_failures", -1, "update.max_failures", "at least 0"),
    ("update", "fast", "update", "expected {step"),
    ("restart.backoff", "60s..1s", "restart.backoff", "lower end above its upper end"),
    ("restart.backoff", "0s..1s", "restart.backoff", "at least 1ms"),
    ("restart.backoff", "1s..2d", "restart.backoff", "at most 1d"),
    ("restart.backoff", "1s..", "restart.backoff", "duration"),
    ("restart.max_retries", "10", "restart.max_retries", "expected an integer"),
    ("restart.retries", 3, "restart.retries", "did you mean 'max_retries'"),
]


def test_the_base_job_is_valid() -> None:
    assert parse_job(VALID).name == "web"


@pytest.mark.parametrize(("field", "value", "path", "words"), CASES,
                         ids=[f"{c[0]}={c[1]!r:.30}" for c in CASES])
def test_bad_field_is_named(field: str, value: Any, path: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_job(with_field(field, value))
    err = caught.value
    matching = [e for e in err.errors if e.path == path]
    assert matching, f"no error at {path}; got {[str(e) for e in err.errors]}"
    assert any(words in e.message for e in matching), [str(e) for e in matching]
    assert isinstance(err, InvalidInput) and err.code == "invalid"


def test_all_errors_are_reported_at_once() -> None:
    data = with_field("name", "Bad Name")
    data = with_field("resources.memory", "lots", data)
    data = with_field("resources.disks[0].path", "relative", data)
    data = with_field("program.start", "", data)
    data = with_field("restart.backoff", "9s..1s", data)
    with pytest.raises(SpecError) as caught:
        parse_job(data)
    paths = [e.path for e in caught.value.errors]
    assert paths == ["name", "resources.memory", "resources.disks[0].path", "program.start",
                     "restart.backoff"]
    assert caught.value.field == "name"
    rendered = str(caught.value).splitlines()
    assert len(rendered) == 5 and rendered[0].startswith("name: ")


def test_error_crosses_the_wire_with_every_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_job(with_field("replicas", -3))
    wire = caught.value.to_wire()
    assert wire == {"code": "invalid", "field": "replicas", "message": "replicas: must be at least 0, got -3"}


@pytest.mark.parametrize("top", [[1, 2], "web", 3, None])
def test_top_level_must_be_a_mapping(top: Any) -> None:
    with pytest.raises(SpecError, match="mapping of job fields at the top level"):
        parse_job(top)


def test_non_string_keys_are_named() -> None:
    data = with_field("name", "web")
    data["resources"][7] = "x"
    with pytest.raises(SpecError) as caught:
        parse_job(data)
    assert [str(e) for e in caught.value.errors] == [
        "resources.7: field names must be strings, got integer 7"]
