"""The daemons' secret files. The ZooKeeper credential: named in the config (`zookeeper_auth`),
refused when missing or readable by others, and used at start to secure a tree an older, open
Galaxy left behind. The state key (`state_key`): the same rules, and for ResMan and the AppMaster
only."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kazoo.exceptions import NoAuthError

from galaxy.coord import Credential, Naming, Paths, StateKey, acl_for, connect, read_leader
from galaxy.daemon.config import ConfigError, parse_config
from galaxy.daemon.replica import ReplicatedDaemon, RoleService
from galaxy.errors import InvalidInput
from galaxy.mesh import Keypair
from galaxy.testing.netns import wait_until

BASE: dict[str, Any] = {"cluster": "c1", "zookeeper": "127.0.0.1:2181", "key": "/k/resman.key",
                        "trusted_keys": "/k/trusted", "id": "r1"}


def test_the_config_names_a_private_credential_file(tmp_path: Path) -> None:
    path = tmp_path / "zookeeper.auth"
    credential = Credential.generate()
    credential.save(path)
    config = parse_config({**BASE, "zookeeper_auth": str(path)}, "resman")
    assert config.zk_credential() == credential
    assert parse_config(BASE, "resman").zk_credential() is None
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others") as err:
        parse_config({**BASE, "zookeeper_auth": str(path)}, "resman")
    assert err.value.field == "zookeeper_auth"
    with pytest.raises(ConfigError, match="cannot read") as err:
        parse_config({**BASE, "zookeeper_auth": str(tmp_path / "missing")}, "resman")
    assert err.value.field == "zookeeper_auth"


def test_the_state_key_is_a_private_file_for_resman_and_the_appmaster_only(tmp_path: Path) -> None:
    path = tmp_path / "state.key"
    key = StateKey.generate()
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    config = parse_config({**BASE, "state_key": str(path)}, "appmaster")
    loaded = config.sealing_key()
    assert loaded is not None and loaded.open(key.seal("s3cret", "x"), "x") == "s3cret"
    assert parse_config(BASE, "resman").sealing_key() is None
    with pytest.raises(ConfigError, match="Agent must not hold it") as err:
        parse_config({**BASE, "state_key": str(path)}, "agent")
    assert err.value.field == "state_key"
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by group or others") as err:
        parse_config({**BASE, "state_key": str(path)}, "resman")
    assert err.value.field == "state_key"
    path.chmod(0o600)
    path.write_text("not base64!\n")
    with pytest.raises(InvalidInput, match="base64") as bad:
        StateKey.load(path)
    assert bad.value.field == "state_key"


@pytest.mark.slow
def test_a_daemon_secures_an_open_tree_at_start(zk_hosts: str, zk_credential: Credential, tmp_path: Path) -> None:
    paths = Paths("upgrade")
    old = connect(zk_hosts, session_timeout=4.0)        # what an older Galaxy left: open znodes
    old.create(paths.state("users", "admin"), b'{"admin": true}', makepath=True)
    old.create(paths.state("jobs", "web"), b'{"worker_secret": "s"}', makepath=True)
    Naming(old, paths).publish("web", "web.0", {"address": "10.0.0.1"})
    old.stop()
    old.close()

    auth = tmp_path / "zookeeper.auth"
    zk_credential.save(auth)
    Keypair.generate().save(str(tmp_path / "appmaster.key"))
    (tmp_path / "trusted").mkdir()
    config = parse_config({"cluster": "upgrade", "zookeeper": zk_hosts, "id": "am-1", "listen": "tcp://127.0.0.1:0",
                           "key": str(tmp_path / "appmaster.key"), "trusted_keys": str(tmp_path / "trusted"),
                           "session_timeout": 2.0, "zookeeper_auth": str(auth)}, "appmaster")
    daemon = ReplicatedDaemon(config, RoleService(config))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    anonymous = connect(zk_hosts)
    ours = connect(zk_hosts, credential=zk_credential)
    try:
        wait_until(lambda: read_leader(anonymous, paths, "appmaster"), timeout=20, what="the AppMaster leading")
        for path in (paths.root, paths.state(), paths.state("users", "admin"), paths.state("jobs", "web"),
                     paths.naming("web", "web.0"), paths.leader("appmaster"), paths.election("appmaster")):
            assert set(ours.get_acls(path)[0]) == set(acl_for(path, zk_credential)), path
        for read in (lambda: anonymous.get(paths.state("users", "admin")),
                     lambda: anonymous.get(paths.state("jobs", "web"))):
            with pytest.raises(NoAuthError):
                read()
        with pytest.raises(NoAuthError):
            anonymous.set(paths.naming("web", "web.0"), b"{}")
        assert Naming(anonymous, paths).resolve("web") == {"web.0": {"address": "10.0.0.1"}}
    finally:
        daemon.stop()
        thread.join(15)
        for client in (anonymous, ours):
            client.stop()
            client.close()
    assert not thread.is_alive()
