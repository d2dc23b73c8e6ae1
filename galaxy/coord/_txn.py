"""Reading the outcome of a ZooKeeper multi (transaction).

A failed multi answers every op: those before the culprit with RolledBackError, the culprit with
its own error (NoNode, NodeExists, BadVersion …), those after it with RuntimeInconsistency. Only
the culprit says what went wrong, and its index says which op it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kazoo.exceptions import RolledBackError, RuntimeInconsistency


def first_failure(results: Sequence[Any]) -> tuple[int, Exception] | None:
    """(index, error) of the op that failed the transaction, or None if it committed."""
    for index, result in enumerate(results):
        if isinstance(result, Exception) and not isinstance(result, RolledBackError | RuntimeInconsistency):
            return index, result
    return None
