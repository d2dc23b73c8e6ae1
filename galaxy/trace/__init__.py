"""Lifecycle events of jobs, pods, containers and hosts, kept in ZooKeeper as bounded rings.

`Tracer.record` never blocks its caller (a scheduler placing thousands of containers a second must
not wait on ZooKeeper): events are queued and written by one thread in batched transactions. Each
object keeps its last `RING` events under `trace/<kind>/<key>`, so the trace survives a leader
failover and its size is bounded per object.
"""

from galaxy.trace._tracer import KINDS, RING, Tracer, read_trace

__all__ = ["KINDS", "RING", "Tracer", "read_trace"]
