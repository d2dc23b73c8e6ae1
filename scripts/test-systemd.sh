#!/usr/bin/env bash
# `make test-systemd`: Galaxy's systemd units, as the playbook installs them, under a real systemd as
# PID 1 (tests/systemd). This machine does not run systemd; a fleet runs it on cgroup v2. So, as for
# `make test-cgroup2`, a Debian kernel boots under QEMU with virtme-ng (cgroup v2 only, the host's
# filesystem read-only, no KVM: FACTS.md), and there Debian's systemd boots as PID 1 of a
# systemd-nspawn container over a throwaway overlay of that filesystem (scripts/systemd-guest.sh).
# Nothing the tests make (units, /etc/galaxy, containers, cgroups) outlives the VM.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/vm-tools.sh
need_vm_tools test-systemd systemd-container
[ -x .venv/bin/ansible-playbook ] || { echo "test-systemd: no ansible-playbook in .venv (make test installs it)"; exit 2; }

kernel=$(ls -1 /boot/vmlinuz-* | sort -V | tail -n 1)
status=$(mktemp -d /tmp/galaxy-systemd-XXXXXX)
trap 'rm -rf "$status"' EXIT
echo "test-systemd: booting $kernel (no KVM; ~30 s to boot)"
start=$(date +%s)
# --rwdir: the one host directory the guest writes, so its exit status reaches the host. The guest
# bounds the container's run (budget, seconds; the whole run takes ~100 s more); the timeout here is
# the backstop for a VM that hangs.
budget=${GALAXY_SYSTEMD_BUDGET:-480}
PATH="$PWD/.venv/bin:$PATH" timeout --kill-after=20 $((budget + 120)) vng -r "$kernel" --disable-kvm \
  --memory "${GALAXY_VM_MEMORY:-3G}" --cpus "$(nproc)" --rwdir "$status" --overlay-rwdir "$PWD" --cwd "$PWD" \
  --exec "GALAXY_SYSTEMD_BUDGET=$budget bash scripts/systemd-guest.sh $status" </dev/null 2>&1 | cat || true   # a pipe for both: see test-cgroup2.sh
rc=$(cat "$status/rc" 2>/dev/null || echo 99)
echo "test-systemd: exit status $rc after $(( $(date +%s) - start )) s"
exit "$rc"
