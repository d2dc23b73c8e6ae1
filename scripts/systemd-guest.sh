#!/usr/bin/env bash
# Runs inside the virtme-ng guest of test-systemd.sh (cgroup v2 only, the host's files read-only) and
# boots Debian's systemd as PID 1 of a systemd-nspawn container whose root is a throwaway overlay of
# the guest's. That systemd starts one unit, galaxy-systemd-test.service, which runs tests/systemd
# (this script again, with --inside) and powers the container off, whatever the result.
#
#   systemd-guest.sh STATUS_DIR            in the guest: build the root, boot it, report the result
#   systemd-guest.sh --inside STATUS_DIR   in the container, as the test unit: run the suite
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--inside" ]; then
  status_dir=$2
  cd "$repo" || exit 1
  echo "container: PID 1 is $(cat /proc/1/comm), $(systemctl --version | head -n 1)"
  .venv/bin/python -m pytest -v -s -p no:cacheprovider tests/systemd 2>&1 | tee "$status_dir/pytest.log"
  echo "${PIPESTATUS[0]}" > "$status_dir/rc"
  exit 0
fi

status_dir=$1
finish() { echo "$1" > "$status_dir/rc"; exit "$1"; }
grep -q '^cgroup2 /sys/fs/cgroup ' /proc/mounts || { echo "guest: cgroup2 is not at /sys/fs/cgroup"; finish 98; }
command -v systemd-nspawn >/dev/null || { echo "guest: no systemd-nspawn"; finish 97; }
modprobe -q overlay 2>/dev/null || true

# What systemd does for the unit nspawn would run in: its cgroup gets the controllers.
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/galaxy-nspawn

# The container's root: the guest's root (the host's files) under a tmpfs overlay, so the playbook may
# write /etc and /var there and nothing of it outlives the VM. The host's enabled units are left
# out: the booted systemd starts what the test unit and the tests ask for, nothing else.
work=/run/galaxy-systemd
mkdir -p "$work" && mount -t tmpfs -o mode=0755 tmpfs "$work" && mkdir -p "$work"/{upper,work,root}
root=$work/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$root" ||
  { echo "guest: cannot make the overlay root"; finish 96; }
find "$root/etc/systemd/system" -mindepth 1 -maxdepth 1 \( -name '*.wants' -o -name '*.requires' \) \
  -exec rm -rf {} +
cat > "$root/etc/systemd/system/galaxy-systemd-test.service" <<EOF
[Unit]
Description=Galaxy's systemd suite (tests/systemd)
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
Environment=GALAXY_SYSTEMD_TEST=1 GALAXY_TEST_TIME_SCALE=${GALAXY_TEST_TIME_SCALE:-3} CI=${CI:-} TMPDIR=/tmp
ExecStart=/bin/bash $repo/scripts/systemd-guest.sh --inside /run/galaxy-status
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
EOF
rm -f "$status_dir/rc"

echo "guest: kernel $(uname -r); booting $(/lib/systemd/systemd --version | head -n 1) in systemd-nspawn"
# --keep-unit --register=no: no systemd outside to ask for a scope (nspawn then splits its own cgroup
# into supervisor/ and payload/ and gives the payload the controllers). --capability=all and no
# seccomp filter of nspawn's: the Agent builds containers (namespaces, mounts) inside it.
# --private-network: a network namespace of its own (loopback only), where /proc/sys/net is writable
# (the Agent reserves its port range there; nspawn mounts it read-only in the guest's namespace).
# timeout: the container powers itself off; this bounds a hang.
timeout --kill-after=20 "${GALAXY_SYSTEMD_BUDGET:-480}" bash -c '
  echo $$ > /sys/fs/cgroup/galaxy-nspawn/cgroup.procs &&
  SYSTEMD_SECCOMP=0 exec systemd-nspawn -q --register=no --keep-unit --link-journal=no \
    --capability=all --private-network -D "$1" --bind="$2" --bind="$3:/run/galaxy-status" \
    -b systemd.unit=galaxy-systemd-test.service systemd.log_color=0 systemd.show_status=error' \
  _ "$root" "$repo" "$status_dir" </dev/null
nspawn_rc=$?
umount -R "$root" 2>/dev/null; umount "$work" 2>/dev/null
rmdir /sys/fs/cgroup/galaxy-nspawn 2>/dev/null
rc=$(cat "$status_dir/rc" 2>/dev/null) || { echo "guest: the suite did not finish (nspawn exit $nspawn_rc)"; finish 95; }
echo "guest: suite exit status $rc (nspawn exit $nspawn_rc)"
exit "$rc"
