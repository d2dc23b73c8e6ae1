#!/usr/bin/env bash
# Runs inside the virtme-ng guest (see test-cgroup2.sh): cgroup v2 only, the host's files read-only.
# The suites run from a non-root cgroup, as a daemon under systemd would, so the driver's own-cgroup
# path (move itself into a leaf, delegate below) is the one exercised.
set -uo pipefail
status_dir=$1; shift
finish() { echo "$1" > "$status_dir/rc"; exit "$1"; }
grep -q '^cgroup2 /sys/fs/cgroup ' /proc/mounts || { echo "guest: cgroup2 is not at /sys/fs/cgroup"; finish 98; }
# The tests' temporary files on a tmpfs of the guest's own: virtme-ng's /tmp is an overlay of the
# host's, and loop devices over overlayfs fail with I/O errors. Not mounted over /tmp itself: the
# checkout (a CI clone) may live there.
mkdir -p /run/galaxy-tmp && mount -t tmpfs -o mode=1777 tmpfs /run/galaxy-tmp
export TMPDIR=/run/galaxy-tmp
for mod in loop ext4 veth ip_tables iptable_filter iptable_nat xt_conntrack xt_comment xt_cgroup \
           xt_owner xt_multiport nf_conntrack; do modprobe -q "$mod" 2>/dev/null || true; done
[ -e /dev/loop-control ] || { echo "guest: no loop devices"; finish 97; }
# What systemd does for a unit with Delegate=yes: its cgroup gets the controllers, the unit owns below.
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/galaxy-ci
echo "guest: kernel $(uname -r), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
export CI="${CI:-}"
export GALAXY_TEST_TIME_SCALE=${GALAXY_TEST_TIME_SCALE:-5}  # deadlines only: TCG runs Python ~7x slower
suites=("$@")
((${#suites[@]})) || suites=(tests/isolate tests/disk tests/ports tests/agent)
# The v1 driver's own tests have no v1 hierarchy here: left out, not skipped.
# pytest alone in /galaxy-ci, as a daemon alone in its unit's cgroup.
(echo "$BASHPID" > /sys/fs/cgroup/galaxy-ci/cgroup.procs &&
 exec .venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow" --ignore tests/isolate/test_cgroup_v1.py \
   "${suites[@]}")
rc=$?
((rc == 0)) || { echo "guest: kernel log tail"; dmesg | tail -n 40; }
finish "$rc"
