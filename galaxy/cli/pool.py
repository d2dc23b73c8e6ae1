"""``galaxy pool …``: the pools hosts and jobs belong to, and each pool's policy. Anyone may list pools;
administrators declare and delete them (a pool must be declared before jobs may be submitted to it;
``default`` always is) and set their policy, which anyone holding a grant on the pool may read."""

from __future__ import annotations

from typing import Any

from galaxy.cli.output import check_output, emit
from galaxy.cli.session import session
from galaxy.cli.tenancy_view import policy_text, pools_text
from galaxy.cli.user import words
from galaxy.errors import InvalidInput
from galaxy.tenancy.model import check_pool_name

FLAGS = {"root_users": "root-users", "host_paths": "host-paths", "package_sources": "package-sources",
         "capabilities": "capabilities"}


class PolicyCommands:
    """A pool's policy: what its jobs may ask beyond the confined default (docs/tenancy.md)."""

    def show(self, pool: Any, output: str = "table") -> None:
        """POOL's policy: users who may run as root, host paths, package sources, capabilities."""
        check_output(output)
        name = check_pool_name(str(pool), "pool")
        with session() as client:
            reply = client.pool_policy(name)
        emit(reply, output, policy_text)

    def set(self, pool: Any, root_users: Any = None, host_paths: Any = None, package_sources: Any = None,
            capabilities: Any = None, output: str = "table") -> None:
        """Replace POOL's policy (administrators); a flag left out allows nothing. --root-users a,b
        --host-paths /srv/data:ro,/var/log/app:rw --package-sources file:///srv/packages,https://pkgs.example.com
        --capabilities NET_BIND_SERVICE"""
        check_output(output)
        name = check_pool_name(str(pool), "pool")
        from galaxy.sdk import policy_body

        given = {key: words([value]) for key, value in (("root_users", root_users), ("host_paths", host_paths),
                                                        ("package_sources", package_sources),
                                                        ("capabilities", capabilities))}
        try:
            policy_body(**given)     # every value checked before connecting: a typo fails at once
        except InvalidInput as err:
            raise _flag_error(err) from None
        with session() as client:
            reply = client.set_pool_policy(name, **given)
        emit(reply, output, policy_text)


def _flag_error(err: InvalidInput) -> InvalidInput:
    """``host_paths[1].path`` → ``host-paths[1].path``: the field as the flag the user typed."""
    field = err.field or ""
    for key, flag in FLAGS.items():
        if field.startswith(key):
            field = flag + field[len(key):]
            break
    return InvalidInput(err.message, field=field or None)


class PoolCommands:
    """Pools: create, list, delete; policy show, policy set."""

    def __init__(self) -> None:
        self.policy = PolicyCommands()

    def create(self, name: Any, description: Any = "", output: str = "table") -> None:
        """Declare pool NAME (a DNS label) with an optional --description."""
        check_output(output)
        pool = check_pool_name(str(name), "name")
        with session() as client:
            row = client.pool_create(pool, str(description))
        emit(row, output, lambda r: f"pool {r.get('pool')} created\n")

    def list(self, output: str = "table") -> None:
        """Every pool: declared or only seen on a host, hosts and jobs in it, description."""
        check_output(output)
        with session() as client:
            rows = client.pools()
        emit(rows, output, pools_text)

    def delete(self, name: Any, output: str = "table") -> None:
        """Delete pool NAME (and its policy); refused while hosts or jobs are in it, and for `default`."""
        check_output(output)
        pool = check_pool_name(str(name), "name")
        with session() as client:
            reply = client.pool_delete(pool)
        emit(reply, output, lambda r: f"pool {r.get('pool')} deleted\n")
