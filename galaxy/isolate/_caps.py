"""Linux capabilities by name: the one table Galaxy's job files, pool policies and the shim share.

Names are written without the ``CAP_`` prefix (``NET_BIND_SERVICE``), as Docker's ``--cap-add`` and
Kubernetes' ``securityContext.capabilities`` take them; ``CAP_NET_BIND_SERVICE`` is accepted too.
Numbers are the kernel's (``include/uapi/linux/capability.h``).
"""

from __future__ import annotations

import ctypes
import os

from galaxy.errors import InvalidInput

_CAP_VERSION_3 = 0x20080522

CAPABILITIES: dict[str, int] = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

INIT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID")
"""What a container's PID 1 (the AppWorker) keeps when it starts as root: enough to manage the work
dir it shares with the service user, to run children as that user and to signal and reap them. The
service never holds these unless its pool's policy grants them."""


def normalise_capability(name: object, field: str = "capabilities") -> str:
    """``"cap_net_bind_service"`` → ``"NET_BIND_SERVICE"``; ``InvalidInput`` naming ``field`` if unknown."""
    if not isinstance(name, str):
        raise InvalidInput(f"expected a capability name, got {name!r}", field=field)
    upper = name.strip().upper()
    upper = upper[4:] if upper.startswith("CAP_") else upper
    if upper not in CAPABILITIES:
        raise InvalidInput(f"unknown capability {name!r} (e.g. NET_BIND_SERVICE)", field=field)
    return upper


def capability_mask(names: tuple[str, ...] | list[str]) -> int:
    """The kernel's bit mask for capability names (already normalised)."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES[name]
    return mask


def narrow_inherited_capabilities() -> int:
    """Keep in the inheritable (and so the ambient) set only what the bounding set allows; returns the
    bits removed. A container's PID 1 started by exec got its own capabilities as ambient ones (the only
    way they cross an exec under SECBIT_NOROOT); its children must not inherit them, so an init calls
    this first thing. Outside a container, or when already narrow, it changes nothing."""
    bounding = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    bounding = int(line.split()[1], 16)
                    break
    except OSError:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable} triples
    if libc.capget(header, data) != 0:
        return 0
    inheritable = data[2] | data[5] << 32
    extra = inheritable & ~bounding
    if extra:
        keep = inheritable & bounding
        data[2], data[5] = keep & 0xFFFFFFFF, keep >> 32
        if libc.capset(header, data) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot narrow the inheritable capabilities: {os.strerror(err)}")
    return extra


__all__ = ["narrow_inherited_capabilities", "CAPABILITIES", "INIT_CAPABILITIES", "capability_mask", "normalise_capability"]
