"""Progress of long steps: rich on a terminal, plain lines when not a terminal or under CI.

``Progress`` shows a live state and lines that stay; ``bring_up`` shows a cluster's bring-up
per node (``mailring up``, and ``mailring scenario`` when it brings the lab up).
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console

from mailring.cluster import UP_STAGES

if TYPE_CHECKING:
    from mailring.cluster import Cluster, UpStep


class Progress:
    """``status(text)`` replaces the live line; ``note(text)`` prints a line that stays."""

    def __init__(self, plain: bool | None = None) -> None:
        if plain is None:
            plain = not sys.stderr.isatty() or bool(os.environ.get("CI"))
        self.plain = plain
        self.console = Console(stderr=True, highlight=False)
        self._live = None
        self._last = ""
        self._t0 = time.monotonic()

    def __enter__(self) -> Progress:
        if not self.plain:
            self._live = self.console.status("")
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def status(self, text: str) -> None:
        """A passing state (waiting for convergence: holders ...); plain mode prints changes only."""
        if text == self._last:
            return
        self._last = text
        if self._live is not None:
            self._live.update(text)
        else:
            print(f"[{time.monotonic() - self._t0:6.1f}s] {text}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self._live is not None:
            self.console.print(text)
        else:
            print(f"[{time.monotonic() - self._t0:6.1f}s] {text}", file=sys.stderr, flush=True)


class BringUp:
    """``Cluster.on_up`` for a person: a line per node and stage, and a live count per stage."""

    def __init__(self, cluster: Cluster, progress: Progress) -> None:
        self.cluster, self.progress = cluster, progress
        self.reached: dict[str, set[str]] = {stage: set() for stage in UP_STAGES}

    def __call__(self, step: UpStep) -> None:
        self.reached[step.stage].add(step.node)
        self.progress.note(f"  {step}")
        nodes, mail = len(self.cluster.topology.nodes), len(self.cluster.topology.mail_nodes)
        counts = [f"{len(got)}/{mail if stage == 'carp' else nodes} {UP_STAGES[stage]}"
                  for stage, got in self.reached.items() if got]
        self.progress.status(f"bringing lab {self.cluster.lab} up: " + ", ".join(counts))


def bring_up(cluster: Cluster, progress: Progress) -> None:
    """``cluster.up()`` with each node's progress shown (started, provisioned, daemons running,
    CARP converged), as the driver tells it."""
    cluster.on_up = BringUp(cluster, progress)
    try:
        cluster.up()
    finally:
        cluster.on_up = None
