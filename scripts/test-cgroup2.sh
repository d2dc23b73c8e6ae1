#!/usr/bin/env bash
# `make test-cgroup2`: the kernel suites (isolate, disk, ports, agent, confinement) on cgroup v2, inside a
# Debian kernel booted under QEMU by virtme-ng. A fleet runs cgroup v2; this machine mounts v1, so the
# v2 driver is proven here, on a real kernel, rather than on the fake cgroupfs of the unit tests.
#
# The guest shares the host's filesystem read-only (virtme-ng's default); /tmp and the checkout are
# overlays it may write but the host never sees, and the tests' TMPDIR is a tmpfs of its own, so
# nothing it makes outlives the VM. KVM is not used: on this machine's CPU qemu's KVM guests abort
# (FACTS.md), so the guest runs under TCG, ~7x slower than the host.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/vm-tools.sh
need_vm_tools test-cgroup2 busybox-static

kernel=$(ls -1 /boot/vmlinuz-* | sort -V | tail -n 1)
status=$(mktemp -d /tmp/galaxy-cgroup2-XXXXXX)
trap 'rm -rf "$status"' EXIT
echo "test-cgroup2: booting $kernel (no KVM; ~30 s to boot)"
start=$(date +%s)
# --rwdir: the one host directory the guest writes, so its exit status reaches the host.
PATH="$PWD/.venv/bin:$PATH" vng -r "$kernel" --disable-kvm --memory "${GALAXY_VM_MEMORY:-3G}" \
  --cpus "$(nproc)" --rwdir "$status" --overlay-rwdir "$PWD" --cwd "$PWD" \
  --exec "bash scripts/cgroup2-guest.sh $status $*" </dev/null 2>&1 | cat   # a pipe for both: QEMU truncated a log file given as its stdout or stderr
rc=$(cat "$status/rc" 2>/dev/null || echo 99)
echo "test-cgroup2: guest exit status $rc after $(( $(date +%s) - start )) s"
exit "$rc"
