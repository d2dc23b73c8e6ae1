"""The shipped job files (template and examples) validate, and defaults are what the docs promise."""

from __future__ import annotations

from pathlib import Path

from galaxy.spec import (
    TEMPLATE,
    HealthCheck,
    JobSpec,
    PortRequest,
    RestartPolicy,
    UpdatePolicy,
    load_job_file,
    load_job_text,
    parse_job,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_template_validates_and_uses_every_field() -> None:
    spec = load_job_text(TEMPLATE, source="template.yaml")
    assert parse_job(spec.to_dict()) == spec
    res, prog = spec.resources, spec.program
    assert res.disks and res.ports and res.labels and res.mounts and spec.env
    assert prog.package and prog.deploy and prog.stop and prog.health and prog.data
    assert spec.update.pause_between == 5.0 and spec.restart == RestartPolicy(backoff_min=1.0, backoff_max=60.0)
    for line in TEMPLATE.splitlines():  # a comment on every field line
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert ":" in stripped and "#" in stripped, line


def test_web_example() -> None:
    spec = load_job_file(EXAMPLES / "web.yaml")
    assert spec.type == "service" and spec.replicas == 3
    assert spec.program.package is None
    assert spec.program.start == "python3 -m http.server $GALAXY_PORT_HTTP"
    assert spec.program.health == HealthCheck(tcp="http", interval=2.0)
    assert spec.resources.ports == (PortRequest(name="http"),)
    assert spec.resources.ports[0].env_name == "GALAXY_PORT_HTTP"


def test_batch_example() -> None:
    spec = load_job_file(EXAMPLES / "batch.yaml")
    assert spec.type == "batch" and spec.replicas == 4
    assert spec.resources.cpu == 0.5 and spec.resources.disks[0].medium == "tmpfs"
    assert spec.restart == RestartPolicy(max_retries=3, backoff_min=5.0, backoff_max=60.0)


def test_minimal_job_gets_documented_defaults() -> None:
    spec = load_job_text("name: tiny\nresources: {cpu: 1, memory: 64Mi}\nprogram: {version: '1', start: 'true'}\n")
    assert spec == JobSpec(name="tiny", resources=spec.resources, program=spec.program)
    assert (spec.type, spec.pool, spec.replicas, spec.max_per_host, spec.user, spec.env) == (
        "service", "default", 1, None, "nobody", {})
    assert spec.update == UpdatePolicy(step=1, step_is_percent=False, pause_between=0.0, max_failures=0)
    assert spec.restart == RestartPolicy(max_retries=10, backoff_min=1.0, backoff_max=60.0)
    assert spec.program.health is None and spec.resources.cpu_excess is False
    assert spec.resources.mounts == () and spec.resources.labels == ()


def test_empty_sections_take_their_defaults() -> None:
    spec = load_job_text("name: tiny\nresources: {cpu: 1, memory: 64Mi, disks:}\n"
                         "program: {version: 3, start: 'true'}\nupdate:\nrestart:\nenv:\n")
    assert spec.program.version == "3"
    assert spec.update == UpdatePolicy() and spec.restart == RestartPolicy() and spec.env == {}


def test_normalisation() -> None:
    spec = load_job_text("""\
name: n
resources:
  cpu: "250m"
  memory: 1.5Gi
  disks: [{medium: hdd, size: 1G, path: /a//b/./c/}]
  labels: [zeta, alpha]
  mounts: [{host: /srv/x/, path: /mnt}]
program: {version: v2, start: run}
update: {step: "25%"}
restart: {backoff: 250ms..1m30s}
""")
    assert spec.resources.cpu == 0.25 and spec.resources.millicores == 250
    assert spec.resources.memory == 3 * 2**29 and spec.resources.disks[0].size == 10**9
    assert spec.resources.disks[0].path == "/a/b/c" and spec.resources.mounts[0].host == "/srv/x"
    assert spec.resources.labels == ("alpha", "zeta") and spec.resources.mounts[0].readonly is True
    assert spec.update.to_dict()["step"] == "25%" and spec.update.pods_per_step(10) == 3
    assert spec.update.pods_per_step(1) == 1
    assert (spec.restart.backoff_min, spec.restart.backoff_max) == (0.25, 90.0)
    assert [spec.restart.delay(i) for i in range(3)] == [0.25, 0.5, 1.0] and spec.restart.delay(50) == 90.0


def test_equal_specs_hash_and_fingerprint_alike() -> None:
    a = load_job_file(EXAMPLES / "web.yaml")
    b = parse_job(a.to_dict())
    assert a == b and hash(a) == hash(b) and a.fingerprint() == b.fingerprint()
    assert len({a, b}) == 1
    changed = parse_job({**a.to_dict(), "replicas": 4})
    assert changed.fingerprint() != a.fingerprint()
