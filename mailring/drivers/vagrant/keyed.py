"""One lock per node, made on first use: work on one VM waits for that VM only.

Used by the SSH connection cache (``ssh.Ssh``) and the kept address loops
(``holdings.HoldingsReader``): a booting TCG guest can take seconds to answer,
and other nodes' commands go on meanwhile.
"""

from __future__ import annotations

import threading


class KeyedLocks:
    """``locks(node)`` is that node's lock, the same object every time."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()  # guards the dict only, never held while a node's lock is

    def __call__(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())
