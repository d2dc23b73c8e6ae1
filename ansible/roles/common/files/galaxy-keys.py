#!/usr/bin/env python3
"""Make the cluster's missing CURVE keypairs on the controller: galaxy-keys.py DIR NAME...

DIR/<name>.key (secret, 0600) and DIR/<name>.key.pub are made once and never replaced, and so is
DIR/zookeeper.auth (0600): the daemons' ZooKeeper digest credential (`user:password`), and
DIR/state.key (0600): ResMan's and the AppMaster's key for secrets at rest; DIR/trusted/
holds exactly the named public keys (a key whose name is gone is removed: that is how a host is
revoked). Prints {"changed": bool, "made": [...], "removed": [...]}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from galaxy.coord import Credential, StateKey
from galaxy.mesh import Keypair


def main(directory: str, names: list[str]) -> dict[str, object]:
    root = Path(directory)
    trusted = root / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    made: list[str] = []
    published: list[str] = []
    for name in names:
        key = root / f"{name}.key"
        if not key.exists():
            Keypair.generate().save(key)
            made.append(name)
        text = Path(f"{key}.pub").read_text()
        pub = trusted / f"{name}.pub"
        if not pub.exists() or pub.read_text() != text:
            pub.write_text(text)
            published.append(name)
    auth = root / "zookeeper.auth"
    if not auth.exists():
        Credential.generate().save(auth)
        made.append(auth.name)
    state_key = root / "state.key"
    if not state_key.exists():
        StateKey.generate().save(state_key)
        made.append(state_key.name)
    removed = sorted(p.name for p in trusted.glob("*.pub") if p.name[:-4] not in names)
    for stale in removed:
        (trusted / stale).unlink()
    return {"changed": bool(made or published or removed), "made": made, "removed": removed}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
