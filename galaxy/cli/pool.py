"""``galaxy pool …``: the pools hosts and jobs belong to. Anyone may list them; administrators declare
and delete them (a pool must be declared before jobs may be submitted to it; ``default`` always is)."""

from __future__ import annotations

from typing import Any

from galaxy.cli.output import check_output, emit
from galaxy.cli.session import session
from galaxy.cli.tenancy_view import pools_text
from galaxy.tenancy.model import check_pool_name


class PoolCommands:
    """Pools: create, list, delete."""

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
        """Delete pool NAME; refused while hosts or jobs are in it, and for `default`."""
        check_output(output)
        pool = check_pool_name(str(name), "name")
        with session() as client:
            reply = client.pool_delete(pool)
        emit(reply, output, lambda r: f"pool {r.get('pool')} deleted\n")
