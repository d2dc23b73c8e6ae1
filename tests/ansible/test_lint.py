"""The playbook passes ansible-lint (production profile) and both inventories parse into the groups
the roles expect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(Path.home()), "ANSIBLE_NOCOLOR": "1",
                               "NO_COLOR": "1", "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg")})


def test_ansible_lint_passes() -> None:
    done = _run(str(BIN / "ansible-lint"), "--offline", "--nocolor", cwd=REPO / "ansible")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def test_example_inventory_has_two_pools_with_host_variables() -> None:
    done = _run(str(BIN / "ansible-inventory"), "-i", "inventory/example", "--list")
    assert done.returncode == 0, done.stderr
    inv = json.loads(done.stdout)
    assert set(inv["agent"]["children"]) == {"pool_web", "pool_batch"}
    hostvars = inv["_meta"]["hostvars"]
    assert hostvars["web1.example.net"]["agent_pool"] == "web"
    assert hostvars["batch2.example.net"]["agent_port_range"] == "30000-39999"
    assert hostvars["web1.example.net"]["agent_disks"][0]["medium"] == "ssd"
    assert len(inv["zookeeper"]["hosts"]) == 3


def test_site_playbook_syntax_with_both_inventories() -> None:
    for inventory in ("inventory/local", "inventory/example"):
        done = _run(str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(REPO / inventory), "site.yml",
                    cwd=REPO / "ansible")
        assert done.returncode == 0, done.stdout + done.stderr
