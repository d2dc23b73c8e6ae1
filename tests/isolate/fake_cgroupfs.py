"""A stand-in for cgroup v2's file system, for the v2 driver tests on this v1-only host.

Clearly not the kernel: a temporary directory tree with cgroupfs's file names, whose mkdir/rmdir and a
few writes behave as the kernel's do (knob files appear on mkdir; ``subtree_control`` takes ``+ctrl``
edits and refuses them with EBUSY in a non-root cgroup that has processes; ``cgroup.kill`` empties the
subtree; rmdir refuses a cgroup with processes).
"""

from __future__ import annotations

import errno
import os
import shutil

from galaxy.isolate import CgroupFs

KNOBS = {
    "cgroup.subtree_control": "", "cgroup.procs": "", "cgroup.kill": "",
    "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0",
    "cpu.max": "max 100000\n", "cpu.weight": "100\n", "cpu.stat": "usage_usec 0\nuser_usec 0\n",
    "memory.max": "max\n", "memory.swap.max": "max\n", "memory.current": "0\n", "memory.peak": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", "pids.max": "max\n",
}


class FakeCgroupV2Fs(CgroupFs):
    def __init__(self, root: str, controllers: str = "cpu io memory pids") -> None:
        self.root = root
        self.writes: list[tuple[str, str]] = []
        with open(os.path.join(root, "cgroup.controllers"), "w") as f:
            f.write(controllers + "\n")
        for name in ("cgroup.subtree_control", "cgroup.procs", "cpu.stat"):
            with open(os.path.join(root, name), "w") as f:
                f.write(KNOBS[name])

    def write(self, path: str, value: str) -> None:
        self.writes.append((os.path.relpath(path, self.root), value))
        cgroup, knob = os.path.split(path)
        if knob == "cgroup.subtree_control":
            if cgroup != self.root and self.read(f"{cgroup}/cgroup.procs").split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
            enabled = self.read(path).split()
            available = self.read(f"{cgroup}/cgroup.controllers").split()
            for edit in value.split():
                name = edit[1:]
                if name not in available:
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                if edit[0] == "+" and name not in enabled:
                    enabled.append(name)
                elif edit[0] == "-" and name in enabled:
                    enabled.remove(name)
            value = " ".join(enabled)
        elif knob == "cgroup.procs":  # a process lives in one cgroup: the write moves it
            for dirpath, _, files in os.walk(self.root):
                if "cgroup.procs" in files and dirpath != cgroup:
                    procs = self.read(os.path.join(dirpath, "cgroup.procs")).split()
                    if value in procs:
                        with open(os.path.join(dirpath, "cgroup.procs"), "w") as f:
                            f.write("\n".join(p for p in procs if p != value))
            value = "\n".join([*self.read(path).split(), value])
        elif knob == "cgroup.kill" and value == "1":
            for dirpath, _, files in os.walk(cgroup):
                if "cgroup.procs" in files:
                    with open(os.path.join(dirpath, "cgroup.procs"), "w"):
                        pass
            return
        with open(path, "w") as f:
            f.write(value)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        parent = os.path.dirname(path)
        with open(os.path.join(path, "cgroup.controllers"), "w") as f:
            f.write(self.read(f"{parent}/cgroup.subtree_control"))
        for name, content in KNOBS.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(content)

    def rmdir(self, path: str) -> None:
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if self.read(f"{path}/cgroup.procs").split() or self.subdirs(path):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        shutil.rmtree(path)
