# Galaxy — every target installs what it needs first (scripts/bootstrap.sh is idempotent).
PY := .venv/bin/python
PYTEST := $(PY) -m pytest

.PHONY: bootstrap test test-fast test-slow test-faults test-cgroup2 test-systemd bench lint demo demo-down clean

bootstrap:
	@bash scripts/bootstrap.sh

## The whole suite (real ZooKeeper, cgroups, loop disks, iptables inside test namespaces).
test: bootstrap
	$(PYTEST) -q -m "not slow"
	$(PYTEST) -q -m slow || [ $$? -eq 5 ]  # 5 = no slow test collected

## Only the unit tests that need no kernel features or ZooKeeper.
test-fast: bootstrap
	$(PYTEST) -q -m "not zk and not root and not netns and not slow"

## The slow multi-host scenarios alone.
test-slow: bootstrap
	$(PYTEST) -q -m slow || [ $$? -eq 5 ]

## The fault scenarios alone (partitions, leader loss, a ZooKeeper ensemble losing members): docs/faults.md.
test-faults: bootstrap
	$(PYTEST) -q -s -m slow tests/faults tests/coord/test_ensemble.py

## The kernel suites (isolate, disk, ports, agent) on cgroup v2, inside a Debian kernel under QEMU
## (virtme-ng): this machine mounts v1, a fleet runs v2. Extra args: make test-cgroup2 SUITES=tests/disk
test-cgroup2: bootstrap
	bash scripts/test-cgroup2.sh $(SUITES)

## systemd 252 as PID 1 (systemd-nspawn inside the cgroup v2 VM): the agent role's units start, restart
## and stop, and an Agent restart leaves its containers running (tests/systemd, ~5 min; docs/deploy.md).
test-systemd: bootstrap
	bash scripts/test-systemd.sh

bench: bootstrap
	$(PY) -m bench

lint: bootstrap
	$(PY) -m ruff check galaxy tests bench

demo: bootstrap
	$(PY) -m galaxy.demo up

demo-down: bootstrap
	$(PY) -m galaxy.demo down

clean:
	rm -rf .venv build *.egg-info .pytest_cache
