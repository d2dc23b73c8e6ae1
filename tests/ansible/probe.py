"""Run inside a test host: what the cluster the playbook made says about itself, as one JSON line.

    probe.py CONFIG [JOB]

CONFIG is a user's config file (`{cluster, zookeeper, key}`, here the admin key the playbook made),
read by the SDK as any user's tool would. Prints the ResMan and AppMaster leader records, the hosts
ResMan knows (`hosts.list`: status, labels, how many containers each Agent reported) and, given JOB, the
job as the AppMaster shows it and its endpoints as naming resolves them. One process per look keeps
the test's polling cheap (one interpreter start, one ZooKeeper session).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from galaxy.coord import read_leader
from galaxy.errors import GalaxyError
from galaxy.sdk import Client


def main(config: str, job: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"hosts": []}
    with Client.from_config(config, deadline=5.0, call_timeout=5.0) as client:
        for role in ("resman", "appmaster"):
            info = read_leader(client.zookeeper(), client.paths, role)
            found[role] = info.identity if info else None
        try:
            if found["resman"] is not None:
                found["hosts"] = [{"id": h.get("id"), "pool": h.get("pool"), "status": h.get("status"),
                                   "labels": h.get("labels"), "key_name": h.get("key_name"),
                                   "containers": h.get("containers")}
                                  for h in client.hosts()]
            if job is not None and found["appmaster"] is not None:
                found["job"] = client.job(job)
                found["endpoints"] = client.resolve(job)
        except GalaxyError as err:
            found["error"] = f"{type(err).__name__}: {err}"
    return found


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3]), default=str))
