"""The one place the CLI makes an SDK client: from ``~/.galaxy/config`` and the ``GALAXY_*`` variables.

Each command opens a client, makes its call(s) and closes it, so a command leaves no thread or
ZooKeeper session behind however it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from galaxy.sdk import Client


@contextmanager
def session() -> Iterator[Client]:
    """An SDK client for the configured cluster, closed when the block ends (also on Ctrl-C)."""
    from galaxy.sdk import Client, load_config  # here, so offline verbs work without the mesh loaded

    client = Client(load_config())
    try:
        yield client
    finally:
        client.close()
