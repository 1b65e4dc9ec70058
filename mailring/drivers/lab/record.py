"""The lab's record, ``build/<lab>/lab.json``: what ``up`` made and the faults in force.

Separate CLI calls (``mailring crash``, ``status``, ``down``) see one another through it:
the topology file and fingerprint the lab was brought up from, its CARP speaker, every
namespace it made (so ``down`` finds what a killed ``up`` left) and each node's fault.
Written whole to a temporary file, then renamed over the old one; a change of one node's
fault holds the record's lock file, so nodes healed side by side (or two CLI calls) do not
write over each other's change.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LabRecord:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict:
        """The whole record; empty when the lab has none (never brought up, or taken down)."""
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def write(self, state: dict) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # each open() is its own lock: threads wait too
            yield

    def faults(self) -> dict[str, str]:
        """node -> the fault in force on it (crashed, isolated, ...)."""
        return dict(self.read().get("faults", {}))

    def set_fault(self, node: str, fault: str | None) -> None:
        """Record ``fault`` for ``node``; None: it has none any more."""
        with self._locked():
            state = self.read()
            faults = state.setdefault("faults", {})
            if fault is None:
                faults.pop(node, None)
            else:
                faults[node] = fault
            self.write(state)

    def brought_up_from(self) -> tuple[str, str | None] | None:
        """(topology file, its fingerprint or None in an older record); None: no record."""
        state = self.read()
        return (state["topology"], state.get("fingerprint")) if "topology" in state else None
