"""Keypairs on disk and the KeyRing."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
import zmq.auth

from galaxy.errors import InvalidInput, NotFound
from galaxy.mesh import Keypair, KeyRing


def test_save_then_load_round_trips_with_private_modes(tmp_path: Path) -> None:
    keypair = Keypair.generate()
    pub_path = keypair.save(tmp_path / "galaxy-agent")

    assert Keypair.load(tmp_path / "galaxy-agent") == keypair
    assert pub_path == tmp_path / "galaxy-agent.pub"
    assert Keypair.load_public(pub_path) == keypair.public
    assert Keypair.load_public(tmp_path / "galaxy-agent") == keypair.public
    assert stat.S_IMODE((tmp_path / "galaxy-agent").stat().st_mode) == 0o600
    assert "secret" not in pub_path.read_text().replace("keep this file secret", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["galaxy-agent", "galaxy-agent.pub"]  # no temp left


def test_files_are_zeromq_certificates(tmp_path: Path) -> None:
    keypair = Keypair.generate()
    keypair.save(tmp_path / "galaxy-cert")
    public, secret = zmq.auth.load_certificate(str(tmp_path / "galaxy-cert"))
    assert (public.decode(), secret.decode() if secret else None) == (keypair.public, keypair.secret)
    # and the other way round: a certificate made by pyzmq loads as a Keypair
    made_pub, made_secret = zmq.auth.create_certificates(str(tmp_path), "galaxy-zmq")
    loaded = Keypair.load(made_secret)
    assert loaded.public == Keypair.load_public(made_pub)


def test_repr_never_shows_the_secret() -> None:
    keypair = Keypair.generate()
    assert keypair.secret not in repr(keypair)


def test_mismatched_or_malformed_keys_are_refused(tmp_path: Path) -> None:
    a, b = Keypair.generate(), Keypair.generate()
    with pytest.raises(InvalidInput) as err:
        Keypair(a.public, b.secret)
    assert err.value.field == "public"
    with pytest.raises(InvalidInput):
        Keypair("short", a.secret)
    (tmp_path / "galaxy-only.pub").write_text(f'curve\n    public-key = "{a.public}"\n')
    with pytest.raises(InvalidInput) as err:
        Keypair.load(tmp_path / "galaxy-only.pub")
    assert err.value.field == "path"
    with pytest.raises(NotFound):
        Keypair.load(tmp_path / "galaxy-missing")


def test_keyring_add_remove_names(tmp_path: Path) -> None:
    ring = KeyRing()
    a, b = Keypair.generate(), Keypair.generate()
    ring.add(a.public, "agent:h1")
    b.save(tmp_path / "user-alice")
    assert ring.add_file(tmp_path / "user-alice.pub") == b.public

    assert a.public in ring and b.public in ring and len(ring) == 2
    assert ring.name_of(b.public) == "user-alice"
    assert ring.names() == ["agent:h1", "user-alice"]
    assert ring.remove(a.public) is True
    assert ring.remove(a.public) is False
    assert a.public not in ring and ring.name_of(a.public) is None
    with pytest.raises(InvalidInput) as err:
        ring.add("not-a-key", "x")
    assert err.value.field == "public"
    with pytest.raises(InvalidInput):
        ring.add(a.public, "")


def test_keyring_is_safe_under_concurrent_writers() -> None:
    ring = KeyRing()
    keys = [Keypair.generate().public for _ in range(50)]

    def churn(offset: int) -> None:
        for _ in range(20):
            for key in keys[offset::4]:
                ring.add(key, f"k{offset}")
            for key in keys[offset::4]:
                ring.remove(key)
            for key in keys[offset::4]:
                ring.add(key, f"k{offset}")

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ring) == sorted(keys)
