"""TLS on ZooKeeper's client port, against a real server serving only its secure port: a client with
the cluster's CA gets in; a plain client, a client trusting another CA, and a server whose certificate
names another address are each refused; bad CA settings are refused naming the field."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from galaxy.coord import ClusterCA, connect
from galaxy.coord._tls import CA_FILE, CA_KEY_FILE, SERVER_FILE, server_names, write_server_tls
from galaxy.daemon.config import ConfigError, parse_config
from galaxy.errors import InvalidInput, Unreachable
from galaxy.sdk.config import load_config
from galaxy.testing.zk import ZooKeeperServer, four_letter_word

pytestmark = pytest.mark.zk


@pytest.fixture(scope="module")
def ca() -> ClusterCA:
    return ClusterCA.generate("tls-test")


@pytest.fixture(scope="module")
def tls_server(ca: ClusterCA) -> Iterator[ZooKeeperServer]:
    with tempfile.TemporaryDirectory(prefix="galaxy-zk-tls-") as tls_dir:
        write_server_tls(tls_dir, ca, ["127.0.0.1", "localhost"])
        with ZooKeeperServer(tls_dir=tls_dir) as server:
            yield server


def test_a_client_with_the_cluster_ca_reads_and_writes(tls_server: ZooKeeperServer) -> None:
    client = connect(tls_server.hosts, timeout=10, ca=tls_server.ca)
    try:
        client.create("/tls-probe", b"over tls")
        assert client.get("/tls-probe")[0] == b"over tls"
        client.delete("/tls-probe")
    finally:
        client.stop()
        client.close()
    # The DNS name in the certificate works as well as its address.
    named = connect(f"localhost:{tls_server.port}", timeout=10, ca=tls_server.ca)
    named.stop()
    named.close()


def test_a_plain_client_gets_nothing(tls_server: ZooKeeperServer) -> None:
    with pytest.raises(Unreachable):
        connect(tls_server.hosts, timeout=3)
    # The port speaks nothing but TLS: even a four-letter word in clear gets no answer.
    with pytest.raises(OSError):
        four_letter_word(tls_server.address, tls_server.port, "ruok", timeout=2)
    assert four_letter_word(tls_server.address, tls_server.port, "ruok", timeout=3, ca=tls_server.ca) == "imok"


def test_a_client_trusting_another_ca_refuses_the_server(tls_server: ZooKeeperServer, tmp_path: Path) -> None:
    ClusterCA.ensure(tmp_path, "someone-else")
    with pytest.raises(Unreachable):
        connect(tls_server.hosts, timeout=3, ca=str(tmp_path / CA_FILE))


def test_a_server_certificate_for_another_address_is_refused(ca: ClusterCA, tmp_path: Path) -> None:
    # Signed by the right CA, but for 10.9.9.9: a server that stole another's certificate.
    write_server_tls(tmp_path, ca, ["10.9.9.9"])
    assert server_names((tmp_path / SERVER_FILE).read_text()) == {"10.9.9.9"}
    with ZooKeeperServer(tls_dir=tmp_path) as server:
        with pytest.raises(Unreachable):
            connect(server.hosts, timeout=3, ca=server.ca)


def test_the_ca_is_made_once_and_its_key_kept_private(tmp_path: Path) -> None:
    first, made = ClusterCA.ensure(tmp_path, "c1")
    again, made_again = ClusterCA.ensure(tmp_path, "c1")
    assert made and not made_again
    assert again.cert == first.cert
    assert stat.S_IMODE(os.stat(tmp_path / CA_KEY_FILE).st_mode) == 0o600
    write_server_tls(tmp_path / "server", first, ["192.0.2.7", "zk-1.example"])
    assert stat.S_IMODE(os.stat(tmp_path / "server" / SERVER_FILE).st_mode) == 0o600
    assert server_names((tmp_path / "server" / SERVER_FILE).read_text()) == {"192.0.2.7", "zk-1.example"}


DAEMON: dict[str, Any] = {"cluster": "c1", "zookeeper": "127.0.0.1:2181", "key": "/k/resman.key",
                          "trusted_keys": "/k/trusted", "state_dir": "/tmp/x"}


@pytest.mark.parametrize("content, message", [(None, "cannot read"), ("not a certificate", "not a PEM certificate")])
def test_a_daemon_config_with_a_bad_ca_names_the_field(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        parse_config({**DAEMON, "zookeeper_ca": str(path)}, "resman")
    assert err.value.field == "zookeeper_ca"
    assert message in str(err.value)


def test_a_daemon_config_takes_a_good_ca(tmp_path: Path) -> None:
    ClusterCA.ensure(tmp_path, "c1")
    config = parse_config({**DAEMON, "zookeeper_ca": str(tmp_path / CA_FILE)}, "resman")
    assert config.zookeeper_ca == str(tmp_path / CA_FILE)


def test_the_client_config_resolves_the_ca_beside_it_and_checks_it(tmp_path: Path) -> None:
    ClusterCA.ensure(tmp_path, "c1")
    file = tmp_path / "config"
    file.write_text(yaml.safe_dump({"cluster": "c1", "zookeeper": "zk:2281", "key": "me.key",
                                    "zookeeper_ca": CA_FILE}))
    assert load_config(file, env={}).zookeeper_ca == str(tmp_path / CA_FILE)
    with pytest.raises(InvalidInput) as err:
        load_config(file, env={"GALAXY_ZOOKEEPER_CA": str(tmp_path / "missing.pem")})
    assert err.value.field == "zookeeper_ca"
