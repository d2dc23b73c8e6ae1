"""The container's seccomp filter, compiled by libseccomp (PyPI ``pyseccomp``, ctypes over the system's
``libseccomp.so.2``) into classic BPF once per process; the shim only loads the bytes.

Why a deny list and not Docker's allow list: Galaxy runs arbitrary services whose syscalls nobody lists,
and an allow list that misses one breaks a service at 3 a.m.; what must never happen is the short list
of syscalls that reach the host kernel's global state or escape the namespaces, which is what Docker's
profile exists to block and what this one blocks (each answered ``EPERM``, as Docker does):

- the mount family and ``pivot_root``, ``chroot``-free escapes (``open_by_handle_at``), ``setns``,
  ``unshare`` and ``clone``/``clone3`` with any namespace flag (a new user namespace would hand the
  service a full capability set over a fresh world);
- kernel code and state: ``init_module``/``finit_module``/``delete_module``, ``kexec_*``, ``bpf``,
  ``perf_event_open``, ``reboot``, ``swapon``/``swapoff``, ``acct``, ``quotactl``, ``syslog``,
  ``iopl``/``ioperm``, the clock setters, ``sethostname``/``setdomainname``;
- the kernel keyring (``keyctl``, ``add_key``, ``request_key``: not namespaced), ``userfaultfd``
  (a tool for kernel race exploits), ``io_uring_*`` (bypasses seccomp for the ops it carries),
  ``lookup_dcookie``, ``personality`` that turns address randomisation off.

Only the native ABI is allowed: a 32-bit syscall (``int 0x80`` on x86_64) kills the process, so a rule
cannot be dodged through the other table. ``clone3`` answers ``ENOSYS`` (its flags live in memory a
filter cannot read), so the C library falls back to ``clone``, whose flags the filter checks.
"""

from __future__ import annotations

import errno
import functools
import tempfile

from galaxy.isolate._errors import IsolateError

DENIED = (
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "open_by_handle_at", "name_to_handle_at", "setns", "unshare",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "bpf",
    "perf_event_open", "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "iopl", "ioperm",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "lookup_dcookie", "vhangup", "nfsservctl", "uselib", "_sysctl", "vm86",
    "vm86old", "create_module", "get_kernel_syms", "query_module",
)
"""Answered EPERM whatever the arguments."""

NAMESPACE_FLAGS = 0x7E020000
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: a clone with any is EPERM."""

ADDR_NO_RANDOMIZE = 0x0040000
"""``personality`` with this bit turns off address randomisation for what the caller execs next."""


@functools.cache
def default_filter() -> bytes:
    """The compiled filter (a ``sock_filter`` array, 8 bytes an instruction) for this machine's ABI."""
    try:
        import pyseccomp as sc
    except ImportError as err:  # a dependency of the package: its absence is a broken install
        raise IsolateError(f"libseccomp's Python bindings (pyseccomp) cannot be loaded: {err}") from err
    flt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            flt.add_rule(eperm, name)
        except (ValueError, RuntimeError, OSError):
            continue  # a syscall this architecture does not have (vm86 on x86_64, iopl on arm64)
    for bit in range(32):  # "any namespace flag": one masked rule per flag, OR-ed by libseccomp
        flag = 1 << bit
        if NAMESPACE_FLAGS & flag:
            flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    flt.add_rule(eperm, "personality", sc.Arg(0, sc.MASKED_EQ, ADDR_NO_RANDOMIZE, ADDR_NO_RANDOMIZE))
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        program = out.read()
    if not program or len(program) % 8:
        raise IsolateError(f"libseccomp exported a malformed filter ({len(program)} bytes)")
    return program


__all__ = ["default_filter", "DENIED"]
