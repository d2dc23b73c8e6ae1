#!/usr/bin/env python3
"""Make the cluster's missing keys on the controller.

    galaxy-keys.py DIR NAME... [--rotate=NAME]...       keypairs, credentials, the ZooKeeper CA
    galaxy-keys.py --finish-rotation DIR                 drop the keys rotated away
    galaxy-keys.py --zookeeper-server DIR HOST ADDR...  HOST's ZooKeeper TLS certificate

DIR/<name>.key (secret, 0600) and DIR/<name>.key.pub are made once and never replaced, and so are
DIR/zookeeper.auth (0600): the daemons' ZooKeeper digest credential (`user:password`),
DIR/state.key (0600): ResMan's and the AppMaster's key for secrets at rest, and
DIR/zookeeper-ca.pem with its key DIR/zookeeper-ca.key (0600): the CA of ZooKeeper's TLS port.
DIR/trusted/ holds exactly the named public keys (a key whose name is gone is removed: that is how a
host is revoked). DIR/zookeeper-server-HOST.pem (0600) is made again when HOST's addresses change.

`--rotate=NAME` replaces NAME's keypair: the old one becomes DIR/NAME.previous.key and stays trusted
as DIR/trusted/NAME@previous.pub (the same principal, galaxy/daemon/keys.py) until
`--finish-rotation`, which the playbook runs once every daemon has restarted with its new key. A name
already being rotated (its .previous.key exists) is not rotated again by a re-run.
Prints {"changed": bool, "made": [...], "removed": [...]}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from galaxy.coord import ClusterCA, Credential, StateKey
from galaxy.coord._private_file import write_private
from galaxy.coord._tls import server_names
from galaxy.mesh import Keypair


def main(directory: str, names: list[str], rotate: list[str]) -> dict[str, object]:
    root = Path(directory)
    trusted = root / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    made: list[str] = []
    published: list[str] = []
    unknown = sorted(set(rotate) - set(names))
    if unknown:
        raise SystemExit(f"galaxy_rotate_keys: {', '.join(unknown)} is not a key of this inventory "
                         f"(known: {', '.join(names)})")
    for name in names:
        key = root / f"{name}.key"
        previous = root / f"{name}.previous.key"
        if name in rotate and key.exists() and not previous.exists():
            key.rename(previous)
            Path(f"{key}.pub").rename(f"{previous}.pub")
        if not key.exists():
            Keypair.generate().save(key)
            made.append(name)
        wanted = {f"{name}.pub": Path(f"{key}.pub").read_text()}
        if previous.exists():
            wanted[f"{name}@previous.pub"] = Path(f"{previous}.pub").read_text()
        for file, text in wanted.items():
            pub = trusted / file
            if not pub.exists() or pub.read_text() != text:
                pub.write_text(text)
                published.append(file)
    auth = root / "zookeeper.auth"
    if not auth.exists():
        Credential.generate().save(auth)
        made.append(auth.name)
    state_key = root / "state.key"
    if not state_key.exists():
        StateKey.generate().save(state_key)
        made.append(state_key.name)
    if ClusterCA.ensure(root, "galaxy")[1]:
        made.append("zookeeper-ca.pem")
    removed = sorted(p.name for p in trusted.glob("*.pub") if not _wanted(root, p.name, names))
    for stale in removed:
        (trusted / stale).unlink()
    return {"changed": bool(made or published or removed), "made": made, "removed": removed}


def _wanted(root: Path, file: str, names: list[str]) -> bool:
    name, _, tag = file.removesuffix(".pub").partition("@")
    return name in names and (not tag or (tag == "previous" and (root / f"{name}.previous.key").exists()))


def finish_rotation(directory: str) -> dict[str, object]:
    """Every daemon runs its new key: the old keys are no longer trusted, nor kept."""
    root = Path(directory)
    removed = []
    for previous in sorted(root.glob("*.previous.key")):
        name = previous.name.removesuffix(".previous.key")
        for path in (previous, Path(f"{previous}.pub"), root / "trusted" / f"{name}@previous.pub"):
            if path.exists():
                path.unlink()
                removed.append(path.name)
    return {"changed": bool(removed), "made": [], "removed": removed}


def zookeeper_server(directory: str, host: str, names: list[str]) -> dict[str, object]:
    """HOST's key and certificate, signed by the cluster's CA for the addresses clients dial."""
    pem = Path(directory) / f"zookeeper-server-{host}.pem"
    if pem.exists() and server_names(pem.read_text()) == set(names):
        return {"changed": False, "made": [], "removed": []}
    write_private(pem, ClusterCA.load(directory).server_pem(names))
    return {"changed": True, "made": [pem.name], "removed": []}


if __name__ == "__main__":
    if sys.argv[1] == "--zookeeper-server":
        print(json.dumps(zookeeper_server(sys.argv[2], sys.argv[3], sys.argv[4:])))
    elif sys.argv[1] == "--finish-rotation":
        print(json.dumps(finish_rotation(sys.argv[2])))
    else:
        args = sys.argv[2:]
        rotate = [a.removeprefix("--rotate=") for a in args if a.startswith("--rotate=")]
        print(json.dumps(main(sys.argv[1], [a for a in args if not a.startswith("--")], rotate)))
