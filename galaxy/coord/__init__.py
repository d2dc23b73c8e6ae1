"""Coordination through ZooKeeper: who leads, what the leader decided, where instances are.

Layout (``Paths``)::

    /galaxy/<cluster>/
    ├── resman/election, appmaster/election   one sequential ephemeral node per replica (Election)
    ├── resman/leader,   appmaster/leader     ephemeral JSON of the holder (publish_leader)
    ├── state/<kind>/<key>                    CBOR records of the active leader (StateStore, fenced)
    ├── naming/<job>/<pod>                    JSON instance records (Naming)
    └── trace/<kind>/<key>                    per-object event rings

Access (``acl_for``): daemons connect with the cluster's digest ``Credential`` and own every znode;
leader records and naming are also readable by anyone (SDK, CLI, AppWorkers hold no credential).

Typical leader loop::

    client = connect(hosts, session_timeout=4)
    def serve(leadership):
        publish_leader(client, paths, "resman", info, leadership=leadership)
        store = StateStore(client, paths, leadership=leadership)   # writes fail once deposed
        while not leadership.lost.is_set():
            if leadership.wait_active(1.0):
                ...                                                   # act as leader
    Election(client, paths, "resman", identity).run(serve, stop)
"""

from __future__ import annotations

from galaxy.coord._acl import Credential, acl_for, secure_tree
from galaxy.coord._client import connect
from galaxy.coord._election import Election
from galaxy.coord._leader import LeaderInfo, publish_leader, read_leader, watch_leader
from galaxy.coord._leadership import Leadership
from galaxy.coord._naming import Naming
from galaxy.coord._paths import ROLES, Paths
from galaxy.coord._retry import retrying
from galaxy.coord._sealed import StateKey, is_sealed, open_sealed
from galaxy.coord._state import Batch, StateStore
from galaxy.coord._tls import ClusterCA, check_ca_file
from galaxy.coord._watch import WatchHandle

__all__ = [
    "Batch", "ClusterCA", "Credential", "Election", "LeaderInfo", "Leadership", "Naming", "Paths", "ROLES", "StateKey", "StateStore",
    "WatchHandle", "acl_for", "check_ca_file", "connect", "is_sealed", "open_sealed", "publish_leader", "read_leader", "retrying",
    "secure_tree", "watch_leader",
]
