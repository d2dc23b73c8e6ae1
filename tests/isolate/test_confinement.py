"""What a process inside a container may do, on the real kernel: capabilities, no_new_privs, seccomp,
the user namespace, /dev, /proc and the host's secrets (docs/security.md)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from galaxy.isolate import (
    BindMount,
    ContainerSpec,
    UserNamespace,
    default_system_mounts,
    host_secrets,
    launch,
    user_namespaces_available,
)
from galaxy.isolate._caps import CAPABILITIES

pytestmark = pytest.mark.root

NOBODY = (65534, 65534)
ROOT_OUTSIDE = 1879048192
INIT = [sys.executable, "-m", "galaxy.appworker.main", "--"]
"""The AppWorker's minimal init: PID 1 as Galaxy runs it (root, its own capabilities narrowed)."""


def run(make_spec, driver, script: str, **overrides) -> tuple[dict, str]:
    argv = overrides.pop("argv", None) or ["/bin/sh", "-c", script]
    spec: ContainerSpec = make_spec(argv, **overrides)
    os.chmod(spec.work_dir, 0o777)
    proc = launch(spec, driver)
    status = proc.wait(30)
    with open(os.path.join(spec.state_dir, "console.log")) as f:
        return status, f.read()


def status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def userns(uid: int = 65534, gid: int = 65534) -> UserNamespace | None:
    if not user_namespaces_available():
        pytest.skip("this kernel allows no user namespaces (user.max_user_namespaces = 0)")
    return UserNamespace(ROOT_OUTSIDE, ROOT_OUTSIDE, uid, gid)


@pytest.mark.parametrize("with_userns", [False, True], ids=["host-ids", "userns"])
def test_a_service_user_holds_no_capability_and_cannot_gain_one(make_spec, driver, with_userns: bool) -> None:
    extra = {"userns": userns()} if with_userns else {}
    status, out = run(make_spec, driver, "cat /proc/self/status", run_as=NOBODY, **extra)
    assert status == {"exit_code": 0}
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status_field(out, name), 16) == 0, f"{name} in:\n{out}"
    assert status_field(out, "NoNewPrivs") == "1"
    assert status_field(out, "Seccomp") == "2"


def test_root_init_keeps_its_own_capabilities_and_its_children_get_none(make_spec, driver) -> None:
    """PID 1 (the AppWorker, root) holds only what it needs; what it starts, even as root, holds nothing."""
    status, out = run(make_spec, driver, "x", argv=[*INIT, "sh", "-c",
                                                    "grep -E '^Cap(Eff|Bnd|Amb)' /proc/1/status /proc/self/status"],
                      userns=userns(0, 0) if user_namespaces_available() else None)
    assert status == {"exit_code": 0}, out
    found = {}
    for line in out.splitlines():
        where, field, value = line.split(":")
        found[(where.split("/")[2], field)] = int(value.strip(), 16)
    init_caps = sum(1 << CAPABILITIES[n] for n in ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"))
    assert found[("1", "CapEff")] == init_caps
    assert found[("1", "CapBnd")] == 0
    assert found[("self", "CapEff")] == 0 and found[("self", "CapAmb")] == 0, out


def test_a_granted_capability_is_all_the_service_gets(make_spec, driver) -> None:
    """NET_BIND_SERVICE from the pool's policy: a non-root service binds a port below 1024, nothing more."""
    with socket.socket() as probe:  # a free low port on loopback, released before the container binds it
        for port in range(900, 1000):
            try:
                probe.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
    script = ("grep -E '^Cap(Eff|Bnd)' /proc/self/status; "
              f"python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", {port})); print(\"bound\")'")
    status, out = run(make_spec, driver, script, run_as=NOBODY, capabilities=("NET_BIND_SERVICE",))
    assert status == {"exit_code": 0}, out
    assert int(status_field(out, "CapEff"), 16) == 1 << CAPABILITIES["NET_BIND_SERVICE"]
    assert int(status_field(out, "CapBnd"), 16) == 1 << CAPABILITIES["NET_BIND_SERVICE"]
    assert "bound" in out
    status, out = run(make_spec, driver, script, run_as=NOBODY)
    assert status["exit_code"] != 0 and "Permission denied" in out


SECCOMP_PROBE = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    ret = getattr(libc, name)(*args)
    print(name, "ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()])
call("unshare", 0x10000000)            # CLONE_NEWUSER
call("unshare", 0x00020000)            # CLONE_NEWNS
call("syscall", 250, 0, 0, 0, 0)       # keyctl
call("syscall", 321, 0, 0, 0)          # bpf
call("syscall", 298, 0, 0, -1, -1, 0)  # perf_event_open
call("syscall", 169, 0, 0, 0, 0)       # reboot
call("syscall", 167, b"/dev/null", 0)  # swapon
call("syscall", 175, 0, 0, b"")        # init_module
call("mount", b"none", b"/tmp", b"tmpfs", 0, None)
call("syscall", 56, 0x10000000, 0, 0, 0, 0)  # clone(CLONE_NEWUSER)
call("syscall", 435, 0, 0)             # clone3: ENOSYS, so libc falls back to clone
call("syscall", 135, 0x0040000)        # personality(ADDR_NO_RANDOMIZE)
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the probe uses x86_64 syscall numbers")
def test_seccomp_refuses_what_reaches_the_host_kernel_even_for_root(make_spec, driver) -> None:
    spec_args = {"userns": userns(0, 0)} if user_namespaces_available() else {}
    status, out = run(make_spec, driver, "x", argv=[*INIT, "python3", "-c", SECCOMP_PROBE], **spec_args)
    assert status == {"exit_code": 0}, out
    lines = [line.split() for line in out.splitlines() if line]
    assert [a for _, a in lines] == ["EPERM"] * 10 + ["ENOSYS", "EPERM"], out


def test_dev_holds_only_the_harmless_devices(make_spec, driver) -> None:
    status, out = run(make_spec, driver, "ls /dev; ls /dev/pts; mknod /tmp/sda b 8 0 && echo MADE; "
                                         "head -c 8 /dev/urandom | wc -c", run_as=NOBODY)
    assert status == {"exit_code": 0}, out
    listed = set(out.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm"} <= listed
    assert not listed & {"sda", "vda", "mem", "kmsg", "loop0", "loop-control", "fuse"}
    assert "MADE" not in out and "8" in out.split()


def test_proc_hides_and_freezes_what_reaches_the_host(make_spec, driver) -> None:
    status, out = run(make_spec, driver, "x", argv=[*INIT, "sh", "-c",
                                                    "echo 1 > /proc/sys/vm/drop_caches || echo RO; "
                                                    "echo b > /proc/sysrq-trigger || echo RO2; "
                                                    "cat /proc/keys 2>&1; cat /proc/timer_list 2>&1 | head -1"])
    assert status == {"exit_code": 0}, out
    assert "RO" in out.split() and "RO2" in out.split()
    assert "Permission denied" in out  # /proc/keys and timer_list are masked (nodev /dev/null)


def test_host_secrets_are_masked_even_for_root_inside(make_spec, driver) -> None:
    hidden = host_secrets(default_system_mounts())
    assert "/etc/shadow" in hidden
    status, out = run(make_spec, driver, "x", hidden=hidden,
                      argv=[*INIT, "sh", "-c", "cat /etc/shadow || echo DENIED; cat /etc/passwd | head -1"])
    assert status == {"exit_code": 0}, out
    assert "DENIED" in out and "root:" in out  # passwd stays readable: programs need it
    assert "root:$" not in out and "root:*" not in out and "root:!" not in out


def test_root_inside_a_user_namespace_is_nobody_to_the_host(make_spec, driver, tmp_dirs) -> None:
    """A host file only root may read stays closed to root in the container, even bound into it."""
    secret_dir = tmp_dirs("secret")
    os.chmod(secret_dir, 0o755)
    with open(os.path.join(secret_dir, "key"), "w") as f:
        f.write("SECRET")
    os.chmod(os.path.join(secret_dir, "key"), 0o600)
    status, out = run(make_spec, driver, "x", userns=userns(0, 0),
                      mounts=[BindMount(secret_dir, "/mnt/host", True)],
                      argv=[*INIT, "sh", "-c", "cat /proc/self/uid_map; id -u; cat /mnt/host/key || echo DENIED"])
    assert status == {"exit_code": 0}, out
    assert f"0 {ROOT_OUTSIDE} 1" in " ".join(out.split())
    assert "DENIED" in out and "SECRET" not in out
