"""The job file: parse YAML or JSON, validate every field, apply defaults, report every error by path.

``load_job_file("web.yaml")`` gives a frozen `JobSpec`; any problem raises one `SpecError` (an
`InvalidInput`) whose ``errors`` name each field (``resources.disks[0].size``) and what was expected.
``spec.to_dict()`` is the normalised plain form — bytes as int, durations as float seconds, cpu as
float cores — and ``parse_job(spec.to_dict()) == spec``. Knows nothing of any component: the CLI,
AppMaster and ResMan all use it. The file format is described in docs/job-file.md.
"""

from __future__ import annotations

from galaxy.spec._errors import FieldError, SpecError
from galaxy.spec._loader import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_TEXT,
    dump_yaml,
    load_job_file,
    load_job_text,
)
from galaxy.spec._model import (
    HIDDEN,
    JOB_TYPES,
    SECRET_KEY,
    DataPackage,
    DiskRequest,
    HealthCheck,
    JobSpec,
    JobType,
    MountSpec,
    PortRequest,
    Program,
    Resources,
    RestartPolicy,
    UpdatePolicy,
    map_secrets,
    redacted,
)
from galaxy.spec._rules import port_env_name
from galaxy.spec._template import TEMPLATE
from galaxy.spec._units import (
    MAX_CPU,
    format_bytes,
    format_duration,
    parse_bytes,
    parse_cpu,
    parse_duration,
    parse_duration_range,
)
from galaxy.spec._validate import MAX_REPLICAS, parse_job

__all__ = [
    "JobSpec", "JobType", "JOB_TYPES", "Resources", "DiskRequest", "PortRequest", "MountSpec", "Program",
    "HealthCheck", "DataPackage", "UpdatePolicy", "RestartPolicy", "SpecError", "FieldError", "parse_job",
    "load_job_text", "load_job_file", "dump_yaml", "parse_bytes", "format_bytes", "parse_duration", "format_duration",
    "parse_duration_range", "parse_cpu", "port_env_name", "TEMPLATE", "MAX_CPU", "MAX_REPLICAS",
    "MAX_TEXT", "MAX_DEPTH", "MAX_ALIASES", "MAX_NODES", "SECRET_KEY", "HIDDEN", "map_secrets", "redacted",
]
