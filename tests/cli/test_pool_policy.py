"""``galaxy pool policy show|set`` through the real entry point against the canned cluster (real mesh +
ZooKeeper): what is sent, the text and JSON shown, and bad flags refused naming the flag, nothing sent."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Run
from tests.sdk.canned import CannedCluster

pytestmark = pytest.mark.zk


def test_set_replaces_the_policy_and_show_prints_it(canned: CannedCluster, run: Run) -> None:
    code, out, err = run("pool", "policy", "set", "default", "--root-users", "bob,carol",
                         "--host-paths", "/srv/data:ro,/var/log/app:rw",
                         "--package-sources", "file:///srv/packages,https://pkgs.example.com",
                         "--capabilities", "NET_BIND_SERVICE")
    assert (code, err) == (0, "")
    [(body, _)] = canned.calls("pool.policy.set")
    assert body == {"pool": "default", "policy": {
        "root_users": ["bob", "carol"],
        "host_paths": [{"path": "/srv/data", "writable": False}, {"path": "/var/log/app", "writable": True}],
        "package_sources": ["file:///srv/packages", "https://pkgs.example.com"],
        "capabilities": ["NET_BIND_SERVICE"]}}
    lines = out.splitlines()
    assert lines[:5] == ["Pool:             default", "Root users:       bob, carol",
                         "Host paths:       /srv/data:ro, /var/log/app:rw",
                         "Package sources:  file:///srv/packages, https://pkgs.example.com",
                         "Capabilities:     NET_BIND_SERVICE"]
    assert lines[-1].startswith("never bound into a container, whatever the policy: /, /etc/galaxy, /var/lib/galaxy")

    code, out, _ = run("pool", "policy", "show", "default", "--output", "json")
    shown = json.loads(out)
    assert code == 0 and shown["root_users"] == ["bob", "carol"] and shown["capabilities"] == ["NET_BIND_SERVICE"]

    assert run("pool", "policy", "set", "default", "--capabilities", "cap_chown")[0] == 0   # replace, not merge
    code, out, _ = run("pool", "policy", "show", "default")
    assert "Root users:       none" in out and "Host paths:       none" in out and "Capabilities:     CHOWN" in out


@pytest.mark.parametrize(("flags", "error"), [
    (("--host-paths", "/etc/galaxy:ro"), "error: host-paths[0].path: /etc/galaxy is never bound into a container"),
    (("--host-paths", "/srv/data:rwx"), "error: host-paths[0]: expected PATH:ro or PATH:rw, got '/srv/data:rwx'"),
    (("--package-sources", "file:///srv/ok,ftp://mirror/x"), "error: package-sources[1]: 'ftp://mirror/x'"),
    (("--capabilities", "NET_BIND_SERVICE,GODMODE"), "error: capabilities[1]: unknown capability 'GODMODE'"),
    (("--root-users", "Bob"), "error: root-users[0]: expected a user name"),
])
def test_bad_values_exit_1_naming_the_flag_and_nothing_is_sent(canned: CannedCluster, run: Run,
                                                               flags: tuple[str, ...], error: str) -> None:
    code, out, err = run("pool", "policy", "set", "default", *flags)
    assert (code, out) == (1, "") and err.startswith(error), err
    assert canned.calls("pool.policy.set") == []


def test_an_undeclared_pool_and_a_bad_pool_name_are_refused(canned: CannedCluster, run: Run) -> None:
    assert run("pool", "policy", "show", "gpu") == (1, "", "error: pool 'gpu' is not declared\n")
    code, _, err = run("pool", "policy", "set", "Bad_Pool")
    assert code == 1 and err.startswith("error: pool: expected a pool name")
