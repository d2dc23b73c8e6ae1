"""Run inside a test host: what the cluster the playbook made says about itself, as one JSON line.

    probe.py ZOOKEEPER CLUSTER ADMIN_KEY

Reads the ResMan and AppMaster leader records from ZooKeeper and asks the ResMan leader for its
hosts (`hosts.list`) over the mesh with the admin key the playbook made.
"""

from __future__ import annotations

import json
import sys
import uuid

from galaxy.coord import Paths, connect, read_leader
from galaxy.errors import GalaxyError
from galaxy.mesh import Client, Keypair
from galaxy.protocol import ResManMethods


def main(zookeeper: str, cluster: str, admin_key: str) -> dict[str, object]:
    zk = connect(zookeeper, session_timeout=4.0)
    try:
        paths = Paths(cluster)
        leaders = {role: read_leader(zk, paths, role) for role in ("resman", "appmaster")}
    finally:
        zk.stop()
        zk.close()
    found: dict[str, object] = {role: (info.identity if info else None) for role, info in leaders.items()}
    resman = leaders["resman"]
    found["hosts"] = []
    if resman is not None:
        client = Client(resman.endpoint, resman.public_key, Keypair.load(admin_key), f"probe-{uuid.uuid4().hex[:8]}",
                        name="probe").start()
        try:
            hosts = client.call(ResManMethods.HOSTS, {}, timeout=5.0)
            found["hosts"] = [{"id": h.get("id"), "pool": h.get("pool"), "status": h.get("status"),
                               "labels": h.get("labels"), "key_name": h.get("key_name")} for h in hosts]
        except GalaxyError as err:
            found["error"] = str(err)
        finally:
            client.close()
    return found


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
