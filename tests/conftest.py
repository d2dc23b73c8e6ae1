"""Fixtures shared by every test package; each package adds its own conftest beside its tests."""

# ---- ZooKeeper (galaxy.testing.zk): one real server per run, a fresh chroot per test ----------------
import os  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

KERNEL_MARKERS = ("root", "netns")
_kernel_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note every skipped test of a kernel suite (cgroups, namespaces, loop devices, iptables)."""
    if report.skipped and not hasattr(report, "wasxfail") and any(m in report.keywords for m in KERNEL_MARKERS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _kernel_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI=true) a kernel suite that skipped fails the run: a green CI must mean it ran."""
    if _kernel_skips and os.environ.get("CI") == "true" and exitstatus == 0:
        print(f"\n{len(_kernel_skips)} kernel test(s) skipped in CI:\n  " + "\n  ".join(_kernel_skips[:20]))
        session.exitstatus = 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's report on the item, so fixtures can tell a failed test at teardown."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"galaxy_report_{report.when}", report)


@pytest.fixture(scope="session")
def zk_server() -> Iterator[object]:
    """A real ZooKeeper (tick 500 ms) for the whole run; stopped, and its temp dir removed, at the end."""
    from galaxy.testing.zk import ZooKeeperServer

    server = ZooKeeperServer(tick_ms=500).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def zk_credential() -> object:
    """The daemons' ZooKeeper credential of this run: tests that create ACL'd znodes use it, and
    every chroot is removed with it (an anonymous client may not delete a daemons-only node)."""
    from galaxy.coord import Credential

    return Credential.generate()


@pytest.fixture
def zk_hosts(zk_server: object, zk_credential: object, request: pytest.FixtureRequest) -> Iterator[str]:
    """``127.0.0.1:PORT/galaxy-test-<id>``: a namespace of this test's own, removed afterwards.

    If the test failed, the tail of the server's log is printed (pytest shows it with the failure).
    """
    from galaxy.coord import connect
    from galaxy.testing.zk import delete_tree

    chroot = f"/galaxy-test-{uuid.uuid4().hex[:12]}"
    hosts: str = zk_server.hosts  # type: ignore[attr-defined]
    yield hosts + chroot
    report = getattr(request.node, "galaxy_report_call", None)
    if report is not None and report.failed:
        print("---- ZooKeeper log tail ----\n" + zk_server.log_text()[-4000:])  # type: ignore[attr-defined]
    root = connect(hosts, credential=zk_credential)  # type: ignore[arg-type]
    try:
        delete_tree(root, chroot)
    finally:
        root.stop()
        root.close()


@pytest.fixture
def zk_client(zk_hosts: str) -> Iterator[object]:
    """A started KazooClient on this test's chroot (session timeout 4 s), stopped afterwards."""
    from galaxy.coord import connect

    client = connect(zk_hosts, session_timeout=4.0)
    try:
        yield client
    finally:
        client.stop()
        client.close()
