"""`galaxy keys new` through the real CLI entry point."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from galaxy.cli.main import main
from galaxy.mesh import Keypair


def test_keys_new_writes_a_keypair_and_prints_the_public_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "galaxy-agent"
    assert main(["keys", "new", str(out)]) == 0
    printed = capsys.readouterr().out.strip()

    keypair = Keypair.load(out)
    assert printed == keypair.public
    assert Keypair.load_public(f"{out}.pub") == keypair.public
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_keys_new_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "galaxy-user"
    assert main(["keys", "new", str(out)]) == 0
    first = Keypair.load(out)
    capsys.readouterr()

    assert main(["keys", "new", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: out:") and "--force" in err
    assert Keypair.load(out) == first

    assert main(["keys", "new", str(out), "--force"]) == 0
    assert Keypair.load(out) != first
    assert capsys.readouterr().out.strip() == Keypair.load(out).public
