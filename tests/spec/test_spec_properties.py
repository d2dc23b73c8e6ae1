"""Properties: any valid spec survives to_dict → parse (and YAML / JSON text); garbage only ever gives SpecError."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy.spec import (
    DataPackage,
    DiskRequest,
    HealthCheck,
    JobSpec,
    MountSpec,
    PortRequest,
    Program,
    Resources,
    RestartPolicy,
    SpecError,
    UpdatePolicy,
    dump_yaml,
    load_job_text,
    parse_job,
)
from tests.spec._jobs import VALID, leaf_paths, with_field

label_names = st.from_regex(r"[a-z]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                max_size=40).filter(lambda s: s.strip() != "")
commands = texts
urls = st.sampled_from(["file:///srv/pkg/a.tar.gz", "http://pkg.example/x.tgz",
                        "https://pkg.example:8443/deep/path/v1.tar.gz?sig=abc", "file://localhost/p/q"])
digests = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
capability_names = st.lists(st.sampled_from(["NET_BIND_SERVICE", "CHOWN", "NET_RAW", "SYS_NICE"]), unique=True,
                            max_size=3).map(lambda names: tuple(sorted(names)))
seconds = st.integers(min_value=1, max_value=86400 * 1000).map(lambda ms: ms / 1000)
check_seconds = st.integers(min_value=1, max_value=3600 * 1000).map(lambda ms: ms / 1000)


@st.composite
def resources(draw: st.DrawFn) -> Resources:
    # Disk and mount points under distinct top-level directories never nest; "x" keeps them off /proc.
    dirs = draw(st.lists(identifiers, unique=True, max_size=6))
    n_disks = draw(st.integers(0, len(dirs)))
    disks = tuple(DiskRequest(medium=draw(identifiers), size=draw(st.integers(2**20, 2**40)),
                              path=f"/x{d}") for d in dirs[:n_disks])
    mounts = tuple(MountSpec(host=f"/srv/{d}", path=f"/x{d}/", readonly=draw(st.booleans()))
                   for d in dirs[n_disks:])
    mounts = tuple(MountSpec(host=m.host, path=m.path.rstrip("/"), readonly=m.readonly) for m in mounts)
    names = draw(st.lists(label_names, unique=True, max_size=5))
    numbers = draw(st.lists(st.integers(1, 65535), unique=True, min_size=len(names), max_size=len(names)))
    ports = tuple(PortRequest(name=n, port=draw(st.sampled_from([None, p]))) for n, p in zip(names, numbers, strict=True))
    return Resources(cpu=draw(st.integers(1, 1024 * 1000)) / 1000, cpu_excess=draw(st.booleans()),
                     memory=draw(st.integers(4 * 2**20, 16 * 2**40)), disks=disks, ports=ports,
                     labels=tuple(sorted(draw(st.lists(label_names, unique=True, max_size=4)))),
                     mounts=mounts)


@st.composite
def job_specs(draw: st.DrawFn) -> JobSpec:
    res = draw(resources())
    port_names = [p.name for p in res.ports]
    health = draw(st.one_of(
        st.none(),
        st.builds(HealthCheck, command=commands, interval=check_seconds, timeout=check_seconds),
        *([st.builds(HealthCheck, tcp=st.sampled_from(port_names), interval=check_seconds, timeout=check_seconds)]
          if port_names else []),
    ))
    package = draw(st.none() | urls)
    program = Program(version=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+:~-]{0,12}", fullmatch=True)),
                      package=package, sha256=None if package is None else draw(st.none() | digests),
                      deploy=draw(st.none() | commands),
                      start=draw(commands), stop=draw(st.none() | commands), health=health,
                      data=draw(st.none() | st.builds(DataPackage, package=urls,
                                                      reload=st.none() | commands, sha256=st.none() | digests)))
    percent = draw(st.booleans())
    update = UpdatePolicy(step=draw(st.integers(1, 100)), step_is_percent=percent,
                          pause_between=draw(st.integers(0, 86400 * 1000)) / 1000,
                          max_failures=draw(st.integers(0, 100)))
    lo, hi = sorted([draw(seconds), draw(seconds)])
    env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
        lambda n: not n.upper().startswith("GALAXY_"))
    return JobSpec(name=draw(label_names), type=draw(st.sampled_from(["service", "batch", "best-effort"])),
                   pool=draw(label_names), replicas=draw(st.integers(0, 100_000)),
                   max_per_host=draw(st.none() | st.integers(1, 100)), resources=res, program=program,
                   user=draw(st.from_regex(r"[a-z_][a-z0-9_-]{0,10}", fullmatch=True)),
                   env=draw(st.dictionaries(env_names, texts | st.just(""), max_size=4)),
                   capabilities=draw(capability_names), update=update,
                   restart=RestartPolicy(max_retries=draw(st.integers(0, 1000)), backoff_min=lo, backoff_max=hi))


@settings(max_examples=150, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(job_specs())
def test_round_trip_through_to_dict_yaml_and_json(spec: JobSpec) -> None:
    plain = spec.to_dict()
    assert parse_job(plain) == spec
    assert load_job_text(dump_yaml(plain), source="job.yaml") == spec
    assert load_job_text(json.dumps(plain), source="job.json") == spec
    assert parse_job(plain).fingerprint() == spec.fingerprint()


garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["1Gi", "5s", "http", "/data", "500m", "25%", "1s..2s", "", "-1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=10) | st.integers() | st.sampled_from(list(VALID) + ["cpu", "memory", "tcp"]),
        inner, max_size=4),
    max_leaves=20,
)
PATHS = leaf_paths(VALID)


@settings(max_examples=300, deadline=None)
@given(garbage)
def test_garbage_document_only_raises_spec_error(doc: Any) -> None:
    try:
        parse_job(doc)
    except SpecError as err:
        assert err.errors and all(isinstance(e.message, str) and e.message for e in err.errors)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATHS), garbage)
def test_garbage_in_any_field_only_raises_spec_error(path: str, value: Any) -> None:
    try:
        spec = parse_job(with_field(path, value))
    except SpecError as err:
        assert err.errors
        assert str(err)
    else:
        assert parse_job(spec.to_dict()) == spec


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_spec_error(text: str) -> None:
    try:
        load_job_text(text)
    except SpecError as err:
        assert err.errors


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_anywhere_numeric_never_crash(value: float) -> None:
    for path in ("resources.cpu", "resources.memory", "update.pause_between", "replicas"):
        try:
            parse_job(with_field(path, value))
        except SpecError:
            pass
        else:
            assert math.isfinite(value)
