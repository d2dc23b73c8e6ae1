"""Test harnesses that run the real thing (a real ZooKeeper, real kernel objects), never stand-ins.

Product code does not import this package; tests, benchmarks and `galaxy dev` do.
"""

from __future__ import annotations

from galaxy.testing.zk import ZooKeeperServer, delete_tree, find_classpath, four_letter_word, free_port

__all__ = ["ZooKeeperServer", "delete_tree", "find_classpath", "four_letter_word", "free_port"]
