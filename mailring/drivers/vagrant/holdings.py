"""Each VM's addresses read over one long-lived SSH channel, so status() can poll fast.

A status() poll used to open an SSH session per node and start sudo and the
guest's address command in it (`ip -j addr`, `ifconfig`): 1.6-3 s per poll on
TCG guests (benchmarks/vms.py), so converge() saw one sample every two seconds.
Here each node runs one root shell loop for as long as the driver talks to it,
opened on first use: a line sent to it runs the guest adapter's command once and
prints its output followed by an end marker. A loop that fails or outlives the
read timeout is dropped and opened again once; a second failure is the caller's
TransportError (the node does not answer).
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable

from mailring.cluster import Pipe, TransportError
from mailring.drivers.vagrant.keyed import KeyedLocks

END = "@@mailring-holdings-end@@"


def loop_argv(argv: list[str]) -> list[str]:
    """The shell loop that runs ``argv`` once per line read and marks the end of each output."""
    return ["sh", "-c", f"while read -r _; do {shlex.join(argv)}; echo {END}; done"]


def ask(pipe: Pipe, deadline: float) -> str:
    """One read through an open loop: everything it printed before the end marker.

    TransportError when the loop ended, or the deadline passed (the pipe's
    own read timeout turns a stalled read into an ended one).
    """
    pipe.send("")
    lines: list[str] = []
    while True:
        line = pipe.readline()
        if not line:
            raise TransportError("the address loop ended without an answer")
        if line.rstrip("\n") == END:
            return "".join(lines)
        lines.append(line)
        if time.monotonic() > deadline:
            raise TransportError("the address loop did not finish its answer in time")


class HoldingsReader:
    """One address loop per node; reads on different nodes run in parallel."""

    def __init__(self, open_loop: Callable[[str, list[str]], Pipe], argv: list[str],
                 timeout: float) -> None:
        self._open_loop = open_loop  # (node, argv) -> a Pipe whose reads time out after `timeout`
        self._argv = loop_argv(argv)
        self._timeout = timeout
        self._pipes: dict[str, Pipe] = {}
        self._node_lock = KeyedLocks()
        self._lock = threading.Lock()  # guards the dict only

    def read(self, node: str) -> str:
        """The guest command's output on ``node`` now; TransportError when the node does not answer."""
        with self._node_lock(node):
            for attempt in (1, 2):  # a kept loop may have died with its connection: reopen once
                pipe = self._pipes.get(node)
                if pipe is None:
                    pipe = self._open_loop(node, self._argv)
                    self._pipes[node] = pipe
                try:
                    return ask(pipe, time.monotonic() + self._timeout)
                except TransportError as exc:
                    self._drop(node)
                    if attempt == 2:
                        raise TransportError(f"{node}: {exc}") from exc
        raise AssertionError("unreachable")

    def _drop(self, node: str) -> None:
        pipe = self._pipes.pop(node, None)
        if pipe is not None:
            pipe.close(timeout=0.5)

    def forget(self, node: str | None = None) -> None:
        """Close a node's loop (every node's when None), e.g. before its connection goes."""
        with self._lock:
            names = [node] if node else list(self._pipes)
        for name in names:
            with self._node_lock(name):
                self._drop(name)
