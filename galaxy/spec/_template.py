"""`TEMPLATE`: the job file ``galaxy job template`` prints — every field, each with a comment.

It is a working job (a test loads it), so a user can copy it, delete what they do not need and submit.
"""

from __future__ import annotations

TEMPLATE = """\
# A Galaxy job file (YAML; JSON with the same fields works too).
# Unknown fields are errors. Sizes: 256Mi 1Gi 512M 4096 (Ki/Mi/Gi/Ti = 1024-based, K/M/G/T = 1000-based).
# Durations: 250ms 5s 1m30s 2h 1d. See docs/job-file.md for every rule.

name: web                  # required; DNS label (a-z, 0-9, '-'), unique in the cluster
type: service              # service (default) | batch (runs to completion) | best-effort (may be evicted)
pool: default              # the pool of hosts to run on (default: default)
replicas: 3                # how many instances, 0..100000 (default: 1)
max_per_host: 1            # at most this many instances on one host (omit or null: no limit)
user: nobody               # POSIX user the service runs as (default: nobody)
env:                       # extra environment variables (names starting with GALAXY_ are reserved)
  LOG_LEVEL: info         # NAME: value; values are strings
  DB_PASSWORD: {secret: hunter2}  # sealed in ZooKeeper, shown as (hidden)
capabilities: []           # Linux capabilities to add, e.g. [NET_BIND_SERVICE]; the pool's policy must allow each

resources:                 # what each instance gets; required
  cpu: 0.5                 # required; cores: 0.5, 2 or "500m"; a hard quota
  cpu_excess: false        # true: cpu shares only, may use idle cpu above the quota (default: false)
  memory: 256Mi            # required; hard limit, at least 4Mi
  disks:                   # each disk is a loop-mounted image of exactly this size (default: none)
    - medium: ssd          # ssd, hdd, tmpfs, or another medium the host lists
      size: 1Gi            # at least 1Mi
      path: /data          # absolute path inside the container (not /, /proc, /sys, /dev)
  ports:                   # named ports; the number is in $GALAXY_PORT_<NAME> (default: none)
    - name: http           # DNS label, unique in the job: this one is $GALAXY_PORT_HTTP
    - name: admin          # $GALAXY_PORT_ADMIN
      port: 9100           # a fixed host port (1..65535); omit it to get one from the host's range
  labels: [ssd]            # run only on hosts with all these labels (default: none)
  mounts:                  # host directories bound into the container; the pool's policy must allow each
    - host: /etc/ssl       # absolute path on the host
      path: /etc/ssl       # absolute path inside the container
      readonly: true       # default: true

program:                   # what runs in each container; required
  version: "1"             # required; any version string (quote numbers); a new one triggers an update
  package: file:///srv/pkg/web-1.tar.gz  # file://, http:// or https://; fetched into the work dir (optional)
  sha256: null             # the package's SHA-256 (64 hex digits), checked before unpacking (optional)
  deploy: tar xzf web-1.tar.gz           # shell command run once after fetching (optional)
  start: ./web --port $GALAXY_PORT_HTTP  # required; shell command that runs the service
  stop: kill -TERM $GALAXY_SERVICE_PID   # shell command to stop it (default: SIGTERM, then SIGKILL)
  health:                  # when an instance counts as healthy (optional; default: while it runs)
    tcp: http              # a port name above that must accept connections; or command: ./check
    interval: 5s           # how often to check (default: 5s)
    timeout: 2s            # how long one check may take (default: 2s)
  data:                    # a data package deployed beside the program (optional)
    package: file:///srv/pkg/dict-7.tar.gz  # required in data: file://, http:// or https://
    reload: ./web --reload # shell command telling the service to re-read it (optional)
    sha256: null           # the data package's SHA-256, checked before unpacking (optional)

update:                    # rolling update policy
  step: 1                  # instances updated at a time, or a percentage of replicas: "25%" (default: 1)
  pause_between: 5s        # wait between steps (default: 0s)
  max_failures: 1          # failed instances tolerated before the rollout stops (default: 0)

restart:                   # what happens when an instance fails
  max_retries: 10          # restarts before the instance is FAILED (default: 10)
  backoff: 1s..60s         # wait between restarts, doubling from the low end to the high end (default)
"""
