#!/usr/bin/env python3
"""Health checks the Galaxy roles wait on after (re)starting a daemon; exit 0 = healthy.

    galaxy-health zookeeper --address HOST:PORT [--ensemble H:P,H:P,...]
                                                           the server serves (srvr shows a Mode), or
                                                           answers while no ensemble member serves yet
    galaxy-health election --zookeeper Z --cluster C --role R --id ID --auth FILE
                                                           the replica campaigns (its election node exists;
                                                           elections are readable with the daemons'
                                                           ZooKeeper credential FILE only)
    galaxy-health leaders --zookeeper Z --cluster C        print {"resman": id|null, "appmaster": id|null}

Every check takes ``--ca FILE`` (before or after the check's name): ZooKeeper serves TLS only, and
the server's certificate is checked against that CA, as the daemons do.

Runs with the release's Python (it needs kazoo). `leaders` never fails: with no ZooKeeper yet (a
first install) it prints nulls, so every replica counts as a standby.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import sys

CA = ""   # --ca: the CA certificate of ZooKeeper's TLS port ("" = plain TCP)


def _srvr(address: str) -> str | None:
    """The server's answer to `srvr`, or None when nothing answers at ``address``."""
    host, _, port = address.rpartition(":")
    try:
        context = ssl.create_default_context(cafile=CA) if CA else None
        raw = socket.create_connection((host, int(port)), timeout=3)
        # wrap_socket takes the descriptor over (closing the TLS socket closes it) or closes it on failure
        sock = context.wrap_socket(raw, server_hostname=host) if context is not None else raw
        with contextlib.closing(sock):
            sock.sendall(b"srvr")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except OSError as err:
        print(f"zookeeper at {address}: {err}")
        return None
    return answer.decode("utf-8", "replace")


def zookeeper(address: str, ensemble: str = "") -> int:
    """Healthy when the server serves. A member of an ensemble that answers but does not serve is
    healthy too while no other member serves: the ensemble has no quorum yet (its first rollout,
    one server at a time), which no single member can fix by waiting."""
    text = _srvr(address)
    if text is None:
        return 1
    if "Mode:" in text:
        return 0
    others = [a for a in ensemble.split(",") if a.strip() and a.strip() != address]
    if others and not any("Mode:" in (_srvr(other.strip()) or "") for other in others):
        print(f"zookeeper at {address} answers; no member serves yet (the ensemble has no quorum yet)")
        return 0
    print(f"zookeeper at {address} does not serve: {text.strip()[:200]}")
    return 1


def _client(hosts: str, auth: str = ""):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from kazoo.client import KazooClient

    auth_data = [("digest", Path(auth).read_text().strip())] if auth else None
    tls = {"use_ssl": True, "ca": CA, "verify_certs": True, "check_hostname": True} if CA else {}
    client = KazooClient(hosts=hosts, timeout=5.0, auth_data=auth_data, **tls)
    client.start(timeout=10)
    return client


def election(hosts: str, cluster: str, role: str, ident: str, auth: str) -> int:
    client = _client(hosts, auth)
    try:
        base = f"/galaxy/{cluster}/{role}/election"
        for child in client.get_children(base) if client.exists(base) else []:
            data, _ = client.get(f"{base}/{child}")
            if data.decode("utf-8", "replace") == ident:
                return 0
        print(f"{role} {ident} is not campaigning in {base}")
        return 1
    finally:
        client.stop()
        client.close()


def leaders(hosts: str, cluster: str) -> int:
    found: dict[str, str | None] = {"resman": None, "appmaster": None}
    try:
        client = _client(hosts)
    except Exception:  # noqa: BLE001 - no ZooKeeper yet: nobody leads
        print(json.dumps(found))
        return 0
    try:
        for role in found:
            path = f"/galaxy/{cluster}/{role}/leader"
            if client.exists(path):
                data, _ = client.get(path)
                found[role] = json.loads(data.decode("utf-8")).get("identity")
    finally:
        client.stop()
        client.close()
    print(json.dumps(found))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-health")
    parser.add_argument("check", choices=["zookeeper", "election", "leaders"])
    parser.add_argument("--address", default="")
    parser.add_argument("--ensemble", default="", help="every member's HOST:PORT (the connect string)")
    parser.add_argument("--zookeeper", default="")
    parser.add_argument("--cluster", default="")
    parser.add_argument("--role", default="")
    parser.add_argument("--id", default="")
    parser.add_argument("--auth", default="", help="the daemons' ZooKeeper credential file (user:password)")
    parser.add_argument("--ca", default="", help="the CA certificate of ZooKeeper's TLS port")
    args = parser.parse_args(argv)
    global CA
    CA = args.ca
    if args.check == "zookeeper":
        return zookeeper(args.address, args.ensemble)
    if args.check == "election":
        return election(args.zookeeper, args.cluster, args.role, args.id, args.auth)
    return leaders(args.zookeeper, args.cluster)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
