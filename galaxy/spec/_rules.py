"""The shapes of names, paths, URLs and commands a job file may hold.

Each check returns the problem as a sentence (or None) rather than raising, so the validator can
collect every problem of a file. The shapes are chosen for where the values end up: job and pool
names in ZooKeeper paths and cgroup names, port names in ``$GALAXY_PORT_<NAME>``, user names in
``/etc/passwd``, container paths as mount points that must stay inside the container.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from galaxy.spec._units import shown

DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_LABEL_RULE = ("a DNS label: 1-63 lowercase letters, digits and '-', starting with a letter "
                  "and not ending with '-'")
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
USER_NAME_RULE = "a POSIX user name: 1-32 lowercase letters, digits, '_' and '-', not starting with a digit or '-'"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENV_NAME_RULE = "an environment variable name: letters, digits and '_', not starting with a digit (<= 128)"
RESERVED_ENV_PREFIX = "GALAXY_"
MEDIUM = re.compile(r"[a-z][a-z0-9_]{0,31}")
MEDIUM_RULE = "a medium: ssd, hdd, tmpfs or another lowercase identifier a host lists (a-z, 0-9, '_')"
LABEL = re.compile(r"[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?")
LABEL_RULE = ("a label: 1-63 lowercase letters, digits, '-', '_' and '.', starting and ending with a "
              "letter or digit")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:~-]{0,127}")
VERSION_RULE = ("a version: 1-128 letters, digits and . _ + : ~ -, starting with a letter or digit "
                "(it names directories and shows in listings)")
URL_SCHEMES = ("file", "http", "https")
MAX_PATH = 4096
MAX_URL = 4096
MAX_COMMAND = 65536
FORBIDDEN_ROOTS = ("proc", "sys", "dev")


def name_problem(value: str, pattern: re.Pattern[str], rule: str) -> str | None:
    if pattern.fullmatch(value):
        return None
    return f"{shown(value)} is not {rule}"


def env_name_problem(name: str) -> str | None:
    if not ENV_NAME.fullmatch(name):
        return f"{shown(name)} is not {ENV_NAME_RULE}"
    if name.upper().startswith(RESERVED_ENV_PREFIX):
        return f"{shown(name)}: names starting with {RESERVED_ENV_PREFIX} are set by Galaxy"
    return None


def port_env_name(port_name: str) -> str:
    """The variable a port's number is passed in: ``http-alt`` → ``GALAXY_PORT_HTTP_ALT``."""
    return "GALAXY_PORT_" + port_name.upper().replace("-", "_")


def _split_path(value: str) -> tuple[str | None, list[str]]:
    """Common to host and container paths: absolute, no NUL, no '..'; '.', '//' and a trailing '/' dropped."""
    if not value:
        return "must not be empty", []
    if "\x00" in value:
        return "must not contain a NUL character", []
    if len(value) > MAX_PATH:
        return f"longer than {MAX_PATH} characters", []
    if not value.startswith("/"):
        return f"{shown(value)} must be an absolute path (start with '/')", []
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        return f"{shown(value)} must not contain '..'", []
    if any(len(p.encode()) > 255 for p in parts):
        return f"{shown(value)} has a component longer than 255 bytes", []
    return None, parts


def container_path(value: str) -> tuple[str | None, str]:
    """(problem, normalised path) for a path inside the container: a disk or mount point."""
    problem, parts = _split_path(value)
    if problem:
        return problem, value
    if not parts:
        return "must not be '/' (the container's root)", value
    if parts[0] in FORBIDDEN_ROOTS:
        return f"{shown(value)} must not be under /proc, /sys or /dev (the kernel's filesystems)", value
    return None, "/" + "/".join(parts)


def host_path(value: str) -> tuple[str | None, str]:
    """(problem, normalised path) for a host directory bound into the container."""
    problem, parts = _split_path(value)
    if problem:
        return problem, value
    if not parts:
        return "must not be '/' (the whole host)", value
    return None, "/" + "/".join(parts)


def nests(a: str, b: str) -> bool:
    """Whether one normalised path is the other or lies under it."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def url_problem(value: str) -> str | None:
    """A package location: ``file:///abs/path``, ``http://host/...`` or ``https://host/...``."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_URL:
        return f"longer than {MAX_URL} characters"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return f"{shown(value)} must not contain spaces or control characters (percent-encode them)"
    scheme, sep, _ = value.partition("://")
    if not sep or scheme.lower() not in URL_SCHEMES:
        return f"{shown(value)} must start with file://, http:// or https://"
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        return f"{shown(value)} is not a valid URL: {exc}"
    if scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            return f"{shown(value)}: a file:// URL names a local path (file:///srv/pkg/x.tar.gz), not a host"
        if not parts.path.startswith("/") or parts.path.endswith("/"):
            return f"{shown(value)}: a file:// URL must name a file by its absolute path"
        return None
    if not parts.hostname:
        return f"{shown(value)} has no host"
    return None


def command_problem(value: str) -> str | None:
    """A shell command line: run by ``/bin/sh -c`` inside the container."""
    if not value.strip():
        return "must not be empty"
    if "\x00" in value:
        return "must not contain a NUL character"
    if len(value) > MAX_COMMAND:
        return f"longer than {MAX_COMMAND} characters"
    return None
