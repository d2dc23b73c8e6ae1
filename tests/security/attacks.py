"""The hostile tenant's attacks, as the Python each attack job runs inside its container.

Every script starts with PRELUDE and prints one line per attempt:

    BLOCKED <what>: <the error the kernel or Galaxy answered>
    GOT-THROUGH <what>: <what it got>          the attack worked (the suite fails on it)
    UNEXPECTED <what>: <…>                     it failed, but not in the way the confinement promises
    END                                        the script ran to its end (it was not killed half-way)

A script never reads a secret into its log: when a read succeeds it prints the length only.
The job runs it as `exec python3 -u -c "$ATTACK"` (the system Python, standard library only), as the
job's user (`nobody`), so what it can do is what any service of a hostile tenant can do.
"""

from __future__ import annotations

PRELUDE = r'''
import ctypes, errno, os, signal, socket, stat, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)

def say(tag, what, why):
    print(f"{tag} {what}: {why}", flush=True)

def blocked(what, why):
    say("BLOCKED", what, why)

def through(what, why):
    say("GOT-THROUGH", what, why)

def unexpected(what, why):
    say("UNEXPECTED", what, why)

def ename(n):
    return errno.errorcode.get(n, str(n)) if n else "no errno"

def describe(e):
    return f"{type(e).__name__} [{ename(e.errno)}] {e.strerror or e}"

def try_os(what, fn, ok=None):
    """fn() must raise OSError (with an errno in ok, when given): BLOCKED; success: GOT-THROUGH."""
    try:
        result = fn()
    except OSError as e:
        if ok is None or ename(e.errno) in ok:
            blocked(what, describe(e))
        else:
            unexpected(what, describe(e))
        return None
    through(what, f"succeeded: {result!r:.120}")
    return result

def sys_call(nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *args)
    return ret, ctypes.get_errno()

def expect_errno(what, ret, err, ok=("EPERM",)):
    if ret == -1 and ename(err) in ok:
        blocked(what, f"-1 {ename(err)} ({os.strerror(err)})")
    elif ret == -1:
        unexpected(what, f"-1 {ename(err)} ({os.strerror(err)}), expected {'/'.join(ok)}")
    else:
        through(what, f"returned {ret}")

def read_secret(what, path):
    """Open and read ``path``: any OSError is BLOCKED; bytes read is GOT-THROUGH (the length only)."""
    data = try_os(what, lambda: len(open(path, "rb").read(65536)))
    return data

def status_fields(pid="self"):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out

me = status_fields()
print(f"WHOAMI uid={os.getuid()} euid={os.geteuid()} gid={os.getgid()} pid={os.getpid()} "
      f"CapEff={me.get('CapEff')} NoNewPrivs={me.get('NoNewPrivs')} Seccomp={me.get('Seccomp')}", flush=True)
'''

EPILOGUE = '\nprint("END", flush=True)\n'

# x86_64 system call numbers (the suite's host; libc has no wrappers for these)
# init_module 175, delete_module 176, kexec_load 246, add_key 248, keyctl 250, perf_event_open 298,
# name_to_handle_at 303, open_by_handle_at 304, finit_module 313, bpf 321, io_uring_setup 425

ATTACKS: dict[str, str] = {}

ATTACKS["read-shadow"] = r'''
for path in ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"):
    if path.endswith("-") and not os.path.lexists(path):
        continue
    read_secret(f"read {path}", path)
'''

ATTACKS["read-cluster-keys"] = r'''
keys = os.environ["KEYS_DIR"]
for path in (keys, os.path.dirname(keys), os.environ["AGENT_CONFIG"], os.environ["AGENT_STATE"],
             "/etc/galaxy", "/etc/galaxy/keys", "/var/lib/galaxy"):
    try_os(f"list {path}", lambda p=path: sorted(os.listdir(p)) if os.path.isdir(p) else open(p).close() or p)
for name in ("admin.key", "agent.key", "resman.key", "appmaster.key", "trusted/admin.pub"):
    read_secret(f"read {keys}/{name}", f"{keys}/{name}")
for path in ("/etc/galaxy/keys/agent.key", "/etc/galaxy/agent.yaml", "/etc/zookeeper/conf/zoo.cfg"):
    if os.path.lexists(path):
        read_secret(f"read {path}", path)
    else:
        blocked(f"read {path}", "not there")
# what a container sees of the host, for the record
print("ROOT", sorted(os.listdir("/")), flush=True)
'''

ATTACKS["read-victim-files"] = r'''
pid = os.environ["VICTIM_PID"]
for path in (os.environ["VICTIM_FILE"], os.path.dirname(os.environ["VICTIM_FILE"]),
             f"/proc/{pid}/root/galaxy/work/state.txt", f"/proc/{pid}/environ", f"/proc/{pid}/cwd/state.txt"):
    if os.path.isdir(path):
        try_os(f"list {path}", lambda p=path: sorted(os.listdir(p)))
    else:
        read_secret(f"read {path}", path)
'''

ATTACKS["read-init-environ"] = r'''
# PID 1 is the AppWorker: its initial environment held the job's worker secret key
try:
    data = open("/proc/1/environ", "rb").read()
except OSError as e:
    blocked("read /proc/1/environ", describe(e))
else:
    names = sorted(v.split(b"=", 1)[0].decode() for v in data.split(b"\0") if v)
    through("read /proc/1/environ", f"{len(data)} bytes, holds GALAXY_WORKER_KEY: {'GALAXY_WORKER_KEY' in names}")
for name in ("mem", "maps", "fd"):
    path = f"/proc/1/{name}"
    if name == "fd":
        try_os(f"list {path}", lambda p=path: os.listdir(p))
    else:
        read_secret(f"read {path}", path)
'''

ATTACKS["setuid-root"] = r'''
try_os("setuid(0)", lambda: os.setuid(0))
try_os("setgid(0)", lambda: os.setgid(0))
for prog in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/chsh", "/usr/bin/newgrp", "/usr/bin/mount"):
    if not os.path.exists(prog):
        continue
    st = os.stat(prog)
    child = subprocess.Popen([prog] + (["-c", "id"] if prog.endswith("su") else []), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the exec (and so any setuid) is done once Popen returns; a zombie still shows its credentials
    uids = status_fields(child.pid).get("Uid", "?").split()
    child.kill()
    out, err = child.communicate()
    what = f"exec setuid-root {prog} (mode {oct(st.st_mode & 0o7777)})"
    if uids and uids[1] == "0":
        through(what, f"effective uid 0: Uid {uids}")
    else:
        blocked(what, f"effective uid stayed {uids[1] if len(uids) > 1 else uids} (Uid {uids}); "
                      f"said {(out + err).decode(errors='replace').strip()[:80]!r}")
'''

ATTACKS["hold-capabilities"] = r'''
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    value = me.get(key, "?")
    (blocked if value.strip("0") == "" else through)(f"hold capabilities {key}", value)
(blocked if me.get("NoNewPrivs") == "1" else through)("gain privileges on exec", f"NoNewPrivs {me.get('NoNewPrivs')}")
(blocked if me.get("Seccomp") == "2" else through)("run without a seccomp filter", f"Seccomp {me.get('Seccomp')}")
'''

ATTACKS["mount-tmpfs"] = r'''
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
os.makedirs("/galaxy/work/mnt", exist_ok=True)
ctypes.set_errno(0)
expect_errno("mount(tmpfs, /galaxy/work/mnt)", libc.mount(b"none", b"/galaxy/work/mnt", b"tmpfs", 0, None),
             ctypes.get_errno())
ctypes.set_errno(0)
expect_errno("mount(/, MS_REMOUNT|MS_BIND) read-write", libc.mount(None, b"/usr", None, 0x20 | 0x1000, None),
             ctypes.get_errno())
ctypes.set_errno(0)
expect_errno("umount2(/proc/sys)", libc.umount2(b"/proc/sys", 2), ctypes.get_errno())
done = subprocess.run(["mount", "-t", "tmpfs", "none", "/galaxy/work/mnt"], capture_output=True, text=True)
(blocked if done.returncode else through)("mount -t tmpfs", f"exit {done.returncode}: {done.stderr.strip()[:100]}")
'''

ATTACKS["unshare-user"] = r'''
ctypes.set_errno(0)
expect_errno("unshare(CLONE_NEWUSER)", libc.unshare(0x10000000), ctypes.get_errno())
done = subprocess.run(["unshare", "-U", "-r", "id", "-u"], capture_output=True, text=True)
(blocked if done.returncode else through)("unshare -U -r", f"exit {done.returncode}: {(done.stdout + done.stderr).strip()[:100]}")
'''

ATTACKS["unshare-mount"] = r'''
ctypes.set_errno(0)
expect_errno("unshare(CLONE_NEWNS)", libc.unshare(0x00020000), ctypes.get_errno())
ctypes.set_errno(0)
expect_errno("unshare(CLONE_NEWNET)", libc.unshare(0x40000000), ctypes.get_errno())
done = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
(blocked if done.returncode else through)("unshare -m", f"exit {done.returncode}: {done.stderr.strip()[:100]}")
'''

ATTACKS["mknod-disk"] = r'''
for path, major, minor in (("/galaxy/work/vda", 253, 0), ("/galaxy/work/sda", 8, 0), ("/dev/shm/loop0", 7, 0)):
    try_os(f"mknod block {major}:{minor} at {path}",
           lambda p=path, a=major, b=minor: os.mknod(p, 0o600 | stat.S_IFBLK, os.makedev(a, b)), ok=("EPERM",))
try_os("mknod char 1:1 (/dev/mem)", lambda: os.mknod("/galaxy/work/mem", 0o600 | stat.S_IFCHR, os.makedev(1, 1)),
       ok=("EPERM",))
for dev in ("/dev/vda", "/dev/sda", "/dev/loop0", "/dev/mem", "/dev/kmsg", "/dev/port"):
    try_os(f"open {dev}", lambda d=dev: os.close(os.open(d, os.O_RDONLY)))
'''

ATTACKS["write-proc-sys"] = r'''
for path in ("/proc/sys/vm/overcommit_ratio", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe"):
    # open for writing only: if it opens, the write would reach the host kernel (nothing is written)
    try_os(f"open {path} for writing", lambda p=path: os.close(os.open(p, os.O_WRONLY)))
'''

ATTACKS["write-sysrq-trigger"] = r'''
try_os("open /proc/sysrq-trigger for writing", lambda: os.close(os.open("/proc/sysrq-trigger", os.O_WRONLY)))
'''

ATTACKS["read-kcore"] = r'''
for path in ("/proc/kcore", "/proc/timer_list", "/proc/sched_debug", "/proc/keys"):
    if not os.path.lexists(path):
        blocked(f"read {path}", "not there")
        continue
    try:
        data = open(path, "rb").read(4096)
    except OSError as e:
        blocked(f"read {path}", describe(e))
    else:
        (through if data else blocked)(f"read {path}", f"{len(data)} bytes")
'''

ATTACKS["load-module"] = r'''
buf = ctypes.create_string_buffer(b"\x7fELF" + b"\0" * 60)
expect_errno("init_module", *sys_call(175, buf, ctypes.c_ulong(64), b""))
fd = os.open("/usr/bin/true", os.O_RDONLY)
expect_errno("finit_module(/usr/bin/true)", *sys_call(313, ctypes.c_int(fd), b"", ctypes.c_int(0)))
expect_errno("delete_module(loop)", *sys_call(176, b"loop", ctypes.c_int(os.O_NONBLOCK)))
for tool in ("insmod", "modprobe"):
    try:
        done = subprocess.run([tool, "loop"], capture_output=True, text=True)
    except FileNotFoundError:
        blocked(f"{tool} loop", "no such program in the container")
    else:
        (blocked if done.returncode else through)(f"{tool} loop", f"exit {done.returncode}: {done.stderr.strip()[:100]}")
'''

ATTACKS["kexec"] = r'''
expect_errno("kexec_load", *sys_call(246, ctypes.c_ulong(0), ctypes.c_ulong(0), None, ctypes.c_ulong(0)))
'''

ATTACKS["keyctl"] = r'''
# the kernel keyring is not namespaced: what one container stores, another could look up
expect_errno("keyctl(GET_KEYRING_ID, session)", *sys_call(250, ctypes.c_long(0), ctypes.c_long(-3), ctypes.c_long(1)))
expect_errno("add_key(user, galaxy-hostile)",
             *sys_call(248, b"user", b"galaxy-hostile", b"secret", ctypes.c_size_t(6), ctypes.c_long(-2)))
'''

ATTACKS["bpf"] = r'''
attr = (ctypes.c_uint32 * 30)(1, 4, 4, 1)            # BPF_MAP_TYPE_HASH, key 4, value 4, 1 entry
expect_errno("bpf(BPF_MAP_CREATE)", *sys_call(321, ctypes.c_int(0), attr, ctypes.c_uint(120)))
'''

ATTACKS["perf-event-open"] = r'''
attr = (ctypes.c_uint32 * 32)()
attr[0], attr[1] = 1, 128                            # PERF_TYPE_SOFTWARE, size; config 0 = cpu-clock
expect_errno("perf_event_open(cpu-clock, self)",
             *sys_call(298, attr, ctypes.c_int(0), ctypes.c_int(-1), ctypes.c_int(-1), ctypes.c_ulong(0)))
'''

ATTACKS["io-uring"] = r'''
params = (ctypes.c_uint32 * 30)()
expect_errno("io_uring_setup", *sys_call(425, ctypes.c_uint(4), params), ok=("EPERM", "ENOSYS"))
'''

ATTACKS["open-by-handle"] = r'''
# "shocker": open the host filesystem's root inode by handle through a bind mount of it
class Handle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("f", ctypes.c_ubyte * 8)]
handle = Handle(8, 1, (ctypes.c_ubyte * 8)(2, 0, 0, 0, 0, 0, 0, 0))   # FILEID_INO32_GEN, inode 2
fd = os.open("/usr", os.O_RDONLY)
ret, err = sys_call(304, ctypes.c_int(fd), ctypes.byref(handle), ctypes.c_int(os.O_RDONLY | os.O_DIRECTORY))
if ret >= 0:
    through("open_by_handle_at(inode 2)", f"opened the host's root: {sorted(os.listdir(f'/proc/self/fd/{ret}'))[:8]}")
else:
    expect_errno("open_by_handle_at(inode 2)", ret, err)
probe = (ctypes.c_ubyte * 136)()
probe[0] = 128
expect_errno("name_to_handle_at(/usr)",
             *sys_call(303, ctypes.c_int(-100), b"/usr", probe, ctypes.byref(ctypes.c_int()), ctypes.c_int(0)))
'''

ATTACKS["kill-victim"] = r'''
pid = int(os.environ["VICTIM_PID"])
seen = ""
try:
    seen = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
except OSError:
    pass
if "http.server" in seen:
    through(f"see the victim's pid {pid}", seen)
elif seen:
    blocked(f"kill -9 {pid}", f"pid {pid} here is this container's own process ({seen!r}): not signalled")
else:
    try_os(f"kill -9 {pid} (the victim's service, by its host pid)", lambda: os.kill(pid, signal.SIGKILL),
           ok=("ESRCH",))
    try_os(f"kill -0 {pid}", lambda: os.kill(pid, 0), ok=("ESRCH",))
'''

ATTACKS["kill-everything"] = r'''
# the victim's service runs as `nobody` too: without a pid namespace kill(-1) would reach it
try:
    os.kill(-1, signal.SIGKILL)
    blocked("kill(-1, SIGKILL)", "signalled only this container's own processes (the test checks the victim)")
except OSError as e:
    blocked("kill(-1, SIGKILL)", describe(e))
'''

ATTACKS["ptrace-victim"] = r'''
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
pid = int(os.environ["VICTIM_PID"])
if os.path.exists(f"/proc/{pid}"):
    blocked(f"ptrace {pid}", "that pid is this container's own process here: not attached")
else:
    ctypes.set_errno(0)
    expect_errno(f"ptrace(ATTACH, {pid}) (the victim's service)", libc.ptrace(16, pid, None, None), ctypes.get_errno(),
                 ok=("ESRCH",))
ctypes.set_errno(0)
ret = libc.ptrace(16, 1, None, None)
err = ctypes.get_errno()
if ret == 0:
    libc.ptrace(17, 1, None, None)                   # detach at once
expect_errno("ptrace(ATTACH, 1) (the container's init)", ret, err)
for path in (f"/proc/{pid}/mem", "/proc/1/mem"):
    read_secret(f"read {path}", path)
'''

ATTACKS["list-processes"] = r'''
mine = os.getpid()
rows = []
for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
    if name.isdigit():
        try:
            cmd = open(f"/proc/{name}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
        except OSError:
            cmd = "?"
        rows.append((int(name), cmd))
print("PROCESSES", [(pid, cmd[:100]) for pid, cmd in rows], flush=True)
strangers = [r for r in rows if r[0] != mine and any(w in r[1] for w in ("http.server", "galaxy.agent", "galaxy.resman",
                                                         "galaxy.appmaster", "zookeeper", "dev zk", "nsenter"))]
victim = int(os.environ["VICTIM_PID"])
if strangers:
    through("see other tenants' and the host's processes", strangers)
elif len(rows) > 10:
    through("see other processes", f"{len(rows)} processes visible")
else:
    blocked("see other tenants' and the host's processes",
            f"only {len(rows)} processes of this container: {[r[0] for r in rows]}")
'''

ATTACKS["write-system-dirs"] = r'''
import uuid
tag = uuid.uuid4().hex[:8]
galaxy_pkg = os.environ["PKG_DIR"]
for d in ("/", "/usr/bin", "/bin", "/etc", "/lib", "/usr/lib", galaxy_pkg, os.environ["VENV_SITE"]):
    path = os.path.join(d, f"galaxy-hostile-{tag}")
    def create(p=path):
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.unlink(p)                                  # never leave it: report only
    try_os(f"create {path}", create)
for path in ("/bin/sh", "/usr/bin/python3", "/etc/passwd", os.path.join(galaxy_pkg, "__init__.py")):
    # opened for writing without O_TRUNC, closed without a byte written
    try_os(f"open {path} for writing", lambda p=path: os.close(os.open(p, os.O_WRONLY)))
'''

ATTACKS["fill-disk"] = r'''
size = 16 << 20
chunk = b"\xa5" * (1 << 20)
written = 0
try:
    with open("/data/fill", "wb") as f:
        while written < 4 * size:
            f.write(chunk)
            f.flush()
            written += len(chunk)
        os.fsync(f.fileno())
except OSError as e:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        blocked("write past the 16Mi disk", f"{describe(e)} after {written >> 20} MiB")
    else:
        unexpected("write past the 16Mi disk", f"{describe(e)} after {written >> 20} MiB")
else:
    through("write past the 16Mi disk", f"wrote {written >> 20} MiB")
st = os.statvfs("/data")
print(f"DISK total={st.f_blocks * st.f_frsize} free={st.f_bavail * st.f_frsize}", flush=True)
'''

ATTACKS["fork-bomb"] = r'''
import select
limit = 8192
r, w = os.pipe()
bomb = os.fork()
if bomb == 0:                                            # the bomb: fork until the kernel says no
    os.close(r)
    os.setpgid(0, 0)
    n = 0
    try:
        while n < limit:                                 # each child: a small sleeping process
            os.posix_spawn("/bin/sleep", ["sleep", "3600"], {})   # (vfork + exec: cheap on cpu)
            n += 1
        os.write(w, f"{n} none".encode())
    except OSError as e:
        os.write(w, f"{n} {ename(e.errno)}".encode())
    os._exit(0)
os.close(w)
started = time.monotonic()
ready, _, _ = select.select([r], [], [], 240.0)
report = os.read(r, 100).decode().split() if ready else ["?", "timeout"]   # b"" if the bomb was killed
elapsed = time.monotonic() - started
try:
    os.killpg(bomb, signal.SIGKILL)
except OSError:
    pass
os.waitpid(bomb, 0)
if len(report) == 2 and report[1] == "EAGAIN":
    blocked("fork bomb", f"fork failed with EAGAIN after {report[0]} processes ({elapsed:.1f} s): the pids limit")
elif len(report) == 2:
    through("fork bomb", f"forked {report[0]} processes, then {report[1]} ({elapsed:.1f} s)")
else:
    unexpected("fork bomb", f"the bomb was killed before fork failed ({elapsed:.1f} s)")
time.sleep(2.0)                                          # PID 1 reaps the orphans
ok = subprocess.run(["true"]).returncode == 0
(blocked if ok else unexpected)("fork bomb lasting", "the container forks again once the bomb is gone")
'''

ATTACKS["exhaust-memory"] = r'''
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(r)
    hoard = []
    for i in range(1024):                             # 1 GiB, far past the 64Mi limit
        hoard.append(bytearray(b"\x5a" * (1 << 20)))
        os.write(w, b"+")
    os._exit(0)
os.close(w)
got = 0
while True:
    data = os.read(r, 4096)
    if not data:
        break
    got += len(data)
_, status = os.waitpid(child, 0)
if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
    blocked("allocate 1 GiB", f"killed by SIGKILL (the cgroup's OOM killer) after {got} MiB")
elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
    through("allocate 1 GiB", f"allocated {got} MiB")
else:
    unexpected("allocate 1 GiB", f"status {status} after {got} MiB")
'''

ATTACKS["bind-unassigned-port"] = r'''
import threading
given = int(os.environ["GALAXY_PORT_GIVEN"])
lo, hi = (int(x) for x in os.environ["PORT_RANGE"].split("-"))
def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    def serve():
        while True:
            c, peer = s.accept()
            print(f"ACCEPTED {port} from {peer[0]}", flush=True)
            c.sendall(b"hostile\n")
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    return port
listen(given)
other = None
for port in range(hi, lo, -1):                        # the top of the range: the last handed out
    if port == given:
        continue
    try:
        other = listen(port)
        break
    except OSError:
        continue
outside = None
for port in range(hi + 20000, hi + 20100):          # outside the Agent's range
    try:
        outside = listen(port)
        break
    except OSError:
        continue
print(f"LISTENING given={given} other={other} outside={outside}", flush=True)
time.sleep(float(os.environ.get("HOLD", "1200")))
'''

ATTACKS["bind-low-port"] = r'''
for port in (80, 443, 22, 1023):
    s = socket.socket()
    try_os(f"bind 0.0.0.0:{port}", lambda p=port: s.bind(("0.0.0.0", p)), ok=("EACCES", "EPERM"))
    s.close()
'''

ATTACKS["set-clock"] = r'''
class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
now = Timespec()
libc.clock_gettime(0, ctypes.byref(now))             # set it to what it is: harmless if it got through
ctypes.set_errno(0)
expect_errno("clock_settime(CLOCK_REALTIME, now)", libc.clock_settime(0, ctypes.byref(now)), ctypes.get_errno())
class Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
tv = Timeval()
libc.gettimeofday(ctypes.byref(tv), None)
ctypes.set_errno(0)
expect_errno("settimeofday(now)", libc.settimeofday(ctypes.byref(tv), None), ctypes.get_errno())
buf = (ctypes.c_long * 32)()
buf[0] = 0x0001                                      # ADJ_OFFSET with offset 0
ctypes.set_errno(0)
expect_errno("adjtimex(ADJ_OFFSET)", libc.adjtimex(buf), ctypes.get_errno())
done = subprocess.run(["date", "-s", "@%d" % now.sec], capture_output=True, text=True)
(blocked if done.returncode else through)("date -s", f"exit {done.returncode}: {done.stderr.strip()[:100]}")
'''

ATTACKS["reboot"] = r'''
# LINUX_REBOOT_CMD_CAD_OFF: the gentlest reboot(2) command (a pid namespace makes it EINVAL even for root)
ctypes.set_errno(0)
expect_errno("reboot(CAD_OFF)", libc.reboot(0), ctypes.get_errno())
'''

ATTACKS["sethostname"] = r'''
ctypes.set_errno(0)
expect_errno("sethostname(pwned)", libc.sethostname(b"pwned", 5), ctypes.get_errno())
ctypes.set_errno(0)
expect_errno("setdomainname(pwned)", libc.setdomainname(b"pwned", 5), ctypes.get_errno())
'''


def script(name: str) -> str:
    return PRELUDE + ATTACKS[name] + EPILOGUE
