"""Containers on the real kernel: cgroups (v1 or v2) + pid/mount/uts/ipc namespaces + bind mounts.

Used only by the Agent; takes plain values (cores, bytes, paths, uids) and knows nothing of jobs or the
mesh. See docs/isolate.md. The public surface::

    driver = detect_cgroups()                       # v1 or v2, names under the caller's own cgroup
    spec = ContainerSpec(id="c1", cgroup="galaxy-agent1/c1",
                         limits=CgroupLimits(0.5, memory_bytes=256 << 20),
                         argv=["python3", "-m", "galaxy.appworker"], env={...},
                         state_dir=..., work_dir=..., mounts=[BindMount("/data/x", "/data", True)],
                         system_mounts=default_system_mounts(), run_as=resolve_user("web"))
    proc = launch(spec, driver)                     # returns once PID 1 runs the command
    proc.wait(10) ; driver.usage(spec.cgroup)       # {"exit_code": 0} ; CgroupUsage(...)
    adopt(spec, driver)                             # after an Agent restart
    destroy(spec, driver)                           # leaves nothing; idempotent
    zygote = Zygote(dir, "galaxy.appworker.main")  # launch(spec, driver, zygote): no exec for PID 1
    favor_dynamic_moves()                           # host tuning at Agent start (see _tuning)
"""

from __future__ import annotations

from galaxy.isolate._caps import (
    CAPABILITIES,
    INIT_CAPABILITIES,
    capability_mask,
    narrow_inherited_capabilities,
    normalise_capability,
)
from galaxy.isolate._cgroup import CgroupDriver, CgroupFs, CgroupLimits, CgroupUsage
from galaxy.isolate._cgroup_v1 import CgroupV1Driver
from galaxy.isolate._cgroup_v2 import CgroupV2Driver
from galaxy.isolate._detect import detect_cgroups
from galaxy.isolate._errors import IsolateError
from galaxy.isolate._launch import adopt, destroy, launch
from galaxy.isolate._process import ContainerProcess
from galaxy.isolate._spec import (
    RESERVED_INSIDE,
    WORK_DIR_INSIDE,
    BindMount,
    ContainerSpec,
    UserNamespace,
    default_system_mounts,
    host_secrets,
    resolve_user,
    user_namespaces_available,
)
from galaxy.isolate._tuning import favor_dynamic_moves
from galaxy.isolate._zygote_handle import Zygote

__all__ = [
    "detect_cgroups", "CgroupDriver", "CgroupV1Driver", "CgroupV2Driver", "CgroupFs", "CgroupLimits",
    "CgroupUsage", "ContainerSpec", "BindMount", "ContainerProcess", "launch", "adopt", "destroy",
    "default_system_mounts", "resolve_user", "IsolateError", "WORK_DIR_INSIDE", "Zygote",
    "CAPABILITIES", "INIT_CAPABILITIES", "capability_mask", "normalise_capability",
    "narrow_inherited_capabilities", "RESERVED_INSIDE", "UserNamespace", "host_secrets", "user_namespaces_available",
    "favor_dynamic_moves",
]
