"""A contender in its own process, for failover tests: campaigns, prints ``elected`` when it leads.

    python -m tests.coord.leader_proc HOSTS CLUSTER IDENTITY SESSION_TIMEOUT
"""

from __future__ import annotations

import sys
import threading

from galaxy.coord import Election, LeaderInfo, Leadership, Paths, connect, publish_leader


def main(argv: list[str]) -> int:
    hosts, cluster, identity, session_timeout = argv[0], argv[1], argv[2], float(argv[3])
    client = connect(hosts, session_timeout=session_timeout)
    paths = Paths(cluster)

    def serve(leadership: Leadership) -> None:
        publish_leader(client, paths, "resman", LeaderInfo(identity, f"tcp://{identity}:1", "key"),
                       leadership=leadership)
        print("elected", flush=True)
        leadership.lost.wait()

    Election(client, paths, "resman", identity).run(serve, threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
