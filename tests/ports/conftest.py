"""Fixtures of the ports tests: network-namespace test hosts, torn down even when a test fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from galaxy.ports import iptables_available
from galaxy.testing.netns import TestHost, TestNetwork, require_netns


@pytest.fixture
def net() -> Iterator[TestNetwork]:
    """Two test hosts on one bridge: host 1 is the client side, host 2 the Agent side."""
    require_netns()
    with TestNetwork(hosts=2) as network:
        yield network


@pytest.fixture
def agent_host(net: TestNetwork) -> TestHost:
    """The test host whose iptables and sysctls the port table drives (skips without iptables)."""
    host = net.host(2)
    with host.netns():
        if not iptables_available():
            pytest.skip("legacy iptables (python-iptables) unavailable in a test namespace")
    return host


def legacy_rules(host: TestHost) -> str:
    """The host's legacy filter table as iptables-legacy-save prints it (nft's iptables-save would not)."""
    return host.run(["iptables-legacy-save", "-t", "filter"]).stdout
