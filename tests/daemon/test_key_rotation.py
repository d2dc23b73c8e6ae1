"""Key rotation on the controller and in a daemon's trusted keys: the playbook's galaxy-keys.py keeps
the old key trusted beside the new one under the same name until the roll is finished, and a daemon
reading that directory admits both as one principal, then only the new one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from galaxy.daemon.keys import TrustedKeys
from galaxy.mesh import Keypair

SCRIPT = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "common" / "files" / "galaxy-keys.py"


def keys(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_rotation_trusts_old_and_new_under_one_name_until_finished(tmp_path: Path) -> None:
    names = ["agent-h2", "agent-h3", "admin"]
    keys(str(tmp_path), *names)
    old = Keypair.load(tmp_path / "agent-h3.key").public
    untouched = Keypair.load(tmp_path / "agent-h2.key").public
    ring = TrustedKeys(str(tmp_path / "trusted"))
    assert ring.keyring.name_of(old) == "agent-h3"

    rotated = keys(str(tmp_path), *names, "--rotate=agent-h3")
    new = Keypair.load(tmp_path / "agent-h3.key").public
    assert rotated["changed"] and new != old
    assert Keypair.load(tmp_path / "agent-h2.key").public == untouched
    assert sorted(p.name for p in (tmp_path / "trusted").iterdir()) == [
        "admin.pub", "agent-h2.pub", "agent-h3.pub", "agent-h3@previous.pub"]
    ring.reload()
    assert ring.keyring.name_of(old) == ring.keyring.name_of(new) == "agent-h3"

    # A re-run of a half-done roll does not rotate again (the daemons may already hold the new key).
    assert keys(str(tmp_path), *names, "--rotate=agent-h3")["changed"] is False
    assert Keypair.load(tmp_path / "agent-h3.key").public == new

    finished = keys("--finish-rotation", str(tmp_path))
    assert finished["changed"] and not list(tmp_path.glob("*.previous.key*"))
    ring.reload()
    assert old not in ring.keyring and ring.keyring.name_of(new) == "agent-h3"
    assert keys(str(tmp_path), *names)["changed"] is False


def test_rotating_a_key_the_inventory_does_not_name_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "agent-h2", "--rotate=agent-h9"],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "galaxy_rotate_keys: agent-h9" in done.stderr
    assert not (tmp_path / "agent-h2.key").exists()
