"""Pool policy (galaxy.tenancy.policy): reading a policy, matching host paths, package URLs, users and
capabilities against it, and the built-in deny list no policy opens. No cluster needed."""

from __future__ import annotations

from typing import Any

import pytest

from galaxy.errors import InvalidInput, PermissionDenied
from galaxy.spec import JobSpec, parse_job
from galaxy.tenancy import DENIED_HOST_PATHS, HostPathRule, PoolPolicy, check_container, check_policy
from galaxy.tenancy.policy import at_or_below, denied, package_problem, policy_reply, runs_as_root

OPEN = PoolPolicy.from_dict({
    "root_users": ["bob", "admin"],
    "host_paths": [{"path": "/srv/data"}, {"path": "/var/log/app", "writable": True}, {"path": "/etc"}],
    "package_sources": ["file:///srv/packages", "https://pkgs.example.com/pub", "http://mirror.example.com:8080"],
    "capabilities": ["NET_BIND_SERVICE"],
})


def job(**over: Any) -> JobSpec:
    program = {"version": "1", "start": "sleep 1000", **over.pop("program", {})}
    resources = {"cpu": 0.1, "memory": "32Mi", **over.pop("resources", {})}
    return parse_job({"name": "web", "pool": "a", "resources": resources, "program": program, **over})


def refusal(policy: PoolPolicy, spec: JobSpec, owner: str = "alice") -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        check_policy("a", policy, spec, owner)
    return caught.value


# ---- the default allows nothing ----------------------------------------------------------------------------

@pytest.mark.parametrize(("over", "field", "words"), [
    ({"user": "root"}, "user", "does not let 'alice' run jobs as root: user 'root' is root (rule root_users: none allowed)"),
    ({"resources": {"mounts": [{"host": "/srv/data", "path": "/data"}]}}, "resources.mounts[0].host",
     "allows no host path /srv/data (rule host_paths: none allowed)"),
    ({"program": {"package": "file:///srv/packages/web.tgz"}}, "program.package",
     "allows no package from file:///srv/packages/web.tgz (rule package_sources: none allowed)"),
    ({"program": {"data": {"package": "https://pkgs.example.com/d.tgz"}}}, "program.data.package",
     "allows no package from https://pkgs.example.com/d.tgz (rule package_sources: none allowed)"),
    ({"capabilities": ["NET_BIND_SERVICE"]}, "capabilities[0]",
     "allows no capability NET_BIND_SERVICE (rule capabilities: none allowed)"),
])
def test_an_empty_policy_refuses_each_extra_naming_the_field_pool_and_rule(over: dict[str, Any], field: str,
                                                                              words: str) -> None:
    err = refusal(PoolPolicy(), job(**over))
    assert err.field == field
    assert err.message == f"pool 'a' policy {words}"
    assert err.details is not None and err.details["pool"] == "a"


def test_an_ordinary_job_passes_an_empty_policy_and_everything_allowed_passes() -> None:
    check_policy("a", PoolPolicy(), job(), "alice")
    allowed = job(user="root", capabilities=["cap_net_bind_service"],
                  resources={"mounts": [{"host": "/srv/data/set1", "path": "/data"},
                                        {"host": "/var/log/app", "path": "/logs", "readonly": False},
                                        {"host": "/etc/ssl/certs", "path": "/certs"}]},
                  program={"package": "file:///srv/packages/web/1.tgz",
                           "data": {"package": "https://pkgs.example.com/pub/dict.tgz"}})
    check_policy("a", OPEN, allowed, "bob")
    assert refusal(OPEN, allowed, owner="alice").field == "user"     # root only for the owners named
    check_policy("a", OPEN, job(user="root"), "admin")                 # the root administrator key, if named


# ---- host paths -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "ok"), [
    ("/srv/data", True), ("/srv/data/x/y", True), ("/srv/database", False), ("/srv", False),
    ("/srv/dat", False), ("/etc/ssl", True), ("/var/log", False), ("/var/log/app2", False),
])
def test_host_paths_match_whole_components_at_or_below_a_rule(host: str, ok: bool) -> None:
    spec = job(resources={"mounts": [{"host": host, "path": "/m"}]})
    if ok:
        check_policy("a", OPEN, spec, "alice")
    else:
        assert refusal(OPEN, spec).field == "resources.mounts[0].host"
    assert at_or_below("/a/b", "/a") and at_or_below("/a", "/a") and not at_or_below("/a/bc", "/a/b")


def test_a_read_only_rule_refuses_a_writable_mount_and_says_how_to_fix_it() -> None:
    err = refusal(OPEN, job(resources={"mounts": [{"host": "/srv/data", "path": "/d", "readonly": False}]}))
    assert err.field == "resources.mounts[0].host"
    assert "allows host path /srv/data read-only only: mount it with readonly: true" in err.message
    assert "(rule host_paths: /etc:ro, /srv/data:ro, /var/log/app:rw)" in err.message


@pytest.mark.parametrize("host", ["/etc", "/etc/shadow", "/etc/galaxy/keys", "/var/lib/galaxy", "/var", "/proc/1",
                                  "/sys", "/dev/sda", "/boot", "/root/.ssh", "/etc/gshadow", "/var/lib"])
def test_the_deny_list_beats_any_policy_also_for_a_path_that_holds_a_denied_one(host: str) -> None:
    everything = PoolPolicy(host_paths=tuple(HostPathRule(p, True) for p in ("/etc", "/var", "/srv", "/home")))
    spec = job(resources={"mounts": [{"host": "/srv/ok", "path": "/ok"}, {"host": host, "path": "/m"}]})
    err = refusal(everything, spec)
    assert err.field == "resources.mounts[1].host" and "built-in deny list" in err.message
    assert denied(host) is not None


@pytest.mark.parametrize("path", ["/", "/etc/galaxy", "/etc/galaxy/keys", "/proc", "/dev/shm", "/root", "/etc/shadow"])
def test_a_policy_may_not_name_a_denied_path(path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        PoolPolicy.from_dict({"host_paths": [{"path": "/srv"}, {"path": path, "writable": False}]})
    assert caught.value.field == "host_paths[1].path" and "deny list" in caught.value.message


def test_the_deny_list_is_the_documented_one() -> None:
    assert DENIED_HOST_PATHS == ("/etc/galaxy", "/var/lib/galaxy", "/proc", "/sys", "/dev", "/boot", "/root",
                                 "/etc/shadow", "/etc/gshadow")
    assert policy_reply("a", None) == {"pool": "a", "root_users": [], "host_paths": [], "package_sources": [],
                                       "capabilities": [], "updated": None, "by": None,
                                       "denied": list(DENIED_HOST_PATHS)}


# ---- packages -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "ok"), [
    ("file:///srv/packages/web.tgz", True),
    ("file://localhost/srv/packages/a/b.tgz", True),
    ("file:///srv/packages/a%20b.tgz", True),
    ("file:///srv/packages", False),                       # the directory itself is no package
    ("file:///srv/packages-evil/web.tgz", False),          # components, not string prefixes
    ("file:///srv/packages/../../etc/shadow", False),
    ("file:///srv/packages/%2e%2e/%2e%2e/etc/shadow", False),
    ("file:///etc/shadow", False),
    ("file://other-host/srv/packages/web.tgz", False),
    ("https://pkgs.example.com/pub/web.tgz", True),
    ("https://PKGS.example.com:443/pub/a/b.tgz", True),
    ("https://user@pkgs.example.com/pub/web.tgz", True),
    ("http://pkgs.example.com/pub/web.tgz", False),         # another scheme
    ("https://pkgs.example.com:8443/pub/web.tgz", False),   # another port
    ("https://pkgs.example.com/public/web.tgz", False),     # another prefix
    ("https://pkgs.example.com/pub/../admin/x", False),
    ("https://pkgs.example.com/pub/%2e%2e/admin/x", False),
    ("https://pkgs.example.com.evil.net/pub/web.tgz", False),
    ("https://pkgs.example.com@evil.net/pub/web.tgz", False),
    ("http://mirror.example.com:8080/any/path.tgz", True),   # a source without a prefix: the whole origin
    ("http://mirror.example.com/any/path.tgz", False),
])
def test_package_urls_match_a_source_by_scheme_host_port_and_path_prefix(url: str, ok: bool) -> None:
    assert (package_problem(OPEN, url) is None) is ok, package_problem(OPEN, url)


def test_package_sources_are_checked_and_normalised() -> None:
    policy = PoolPolicy.from_dict({"package_sources": ["https://Pkgs.Example.com:443/pub/", "file:///srv//packages/",
                                                       "file:///srv/packages", "http://h:8080"]})
    assert policy.package_sources == ("file:///srv/packages", "http://h:8080", "https://pkgs.example.com/pub")
    assert policy.file_dirs() == ("/srv/packages",)
    for bad, words in [("ftp://h/x", "expected file:///dir"), ("file:///", "whole host"),
                       ("file:///etc", "holds /etc/galaxy"), ("file:///var/lib/galaxy/pkgs", "below /var/lib/galaxy"),
                       ("file://h/srv", "local directory"), ("https://u:p@h/x", "no user name"),
                       ("https://h/x?y=1", "query"), ("https:///x", "no user name"), ("file:///srv/../etc", "'..'"),
                       ("https://h/a b", "expected file:///dir")]:
        with pytest.raises(InvalidInput, match=words) as caught:
            PoolPolicy.from_dict({"package_sources": ["file:///ok", bad]})
        assert caught.value.field == "package_sources[1]"


# ---- users and capabilities ----------------------------------------------------------------------------------

def test_root_is_the_name_uid_0_or_gid_0() -> None:
    assert runs_as_root("root") and runs_as_root("0") and runs_as_root("00")
    assert runs_as_root("toor", uid=0, gid=0) and runs_as_root("wheelie", uid=1000, gid=0)
    assert not runs_as_root("nobody", uid=65534, gid=65534) and not runs_as_root("10")


def test_rules_are_read_sorted_once_each_and_bad_entries_are_named() -> None:
    policy = PoolPolicy.from_dict({"root_users": ["carol", "bob", "carol"], "capabilities": ["cap_chown", "NET_RAW",
                                                                                           "CHOWN"],
                                   "host_paths": [{"path": "/srv//x/"}, {"path": "/srv/x", "writable": True}]})
    assert policy.root_users == ("bob", "carol") and policy.capabilities == ("CHOWN", "NET_RAW")
    assert policy.host_paths == (HostPathRule("/srv/x", True),)
    assert PoolPolicy.from_dict(policy.to_dict()) == policy
    assert PoolPolicy.from_dict({}) == PoolPolicy() == PoolPolicy.from_dict(None)
    for raw, field in [({"root_users": ["Bob"]}, "root_users[0]"), ({"root_users": ["root"]}, "root_users[0]"),
                       ({"capabilities": ["NET_BIND", 1]}, "capabilities[0]"), ({"capabilities": "CHOWN"}, "capabilities"),
                       ({"host_paths": [{"path": "srv"}]}, "host_paths[0].path"),
                       ({"host_paths": [{"path": "/a/../b"}]}, "host_paths[0].path"),
                       ({"host_paths": [{"path": "/a", "writable": "yes"}]}, "host_paths[0].writable"),
                       ({"host_paths": ["/a"]}, "host_paths[0]"), ({"roots": []}, "policy")]:
        with pytest.raises(InvalidInput) as caught:
            PoolPolicy.from_dict(raw)
        assert caught.value.field == field, raw


# ---- the Agent's check ------------------------------------------------------------------------------------------

def test_the_agent_checks_the_resolved_user_each_mount_after_its_symlinks_and_each_capability() -> None:
    links = {"/srv/data/link": "/etc/galaxy/keys", "/srv/data/ok": "/srv/data/real"}

    def check(**over: Any) -> None:
        args: dict[str, Any] = {"owner": "alice", "user": "nobody", "uid": 65534, "gid": 65534, "mounts": [],
                                "capabilities": [], **over}
        check_container("a", OPEN, resolve=lambda p: links.get(p, p), **args)

    check(mounts=[("/srv/data/ok", False), ("/var/log/app", True)], capabilities=["NET_BIND_SERVICE"])
    check(owner="bob", user="toor", uid=0, gid=0)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"user": "toor", "uid": 0, "gid": 0}, "user", "user 'toor' resolves to uid 0, gid 0"),
        ({"user": "games", "uid": 5, "gid": 0}, "user", "run jobs as root"),
        ({"mounts": [("/srv/data/x", False), ("/srv/data/link", False)]}, "mounts[1].host", "via /srv/data/link"),
        ({"mounts": [("/srv/data", True)]}, "mounts[0].host", "read-only only"),
        ({"mounts": [("/opt", False)]}, "mounts[0].host", "allows no host path /opt"),
        ({"capabilities": ["NET_BIND_SERVICE", "SYS_ADMIN"]}, "capabilities[1]", "allows no capability SYS_ADMIN"),
    ]
    for over, field, words in cases:
        with pytest.raises(PermissionDenied, match=words) as caught:
            check(**over)
        assert caught.value.field == field
