"""The lab's record, ``build/<lab>/lab.json``: what ``up`` made and the faults in force.

Separate CLI calls (``mailring crash``, ``status``, ``down``) see one another through it:
the topology file and fingerprint the lab was brought up from, its CARP speaker, every
namespace it made (so ``down`` finds what a killed ``up`` left) and each node's fault.
Written whole to a temporary file, then renamed over the old one.
"""

from __future__ import annotations

import json
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
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.path)

    def faults(self) -> dict[str, str]:
        """node -> the fault in force on it (crashed, isolated, ...)."""
        return dict(self.read().get("faults", {}))

    def set_fault(self, node: str, fault: str | None) -> None:
        """Record ``fault`` for ``node``; None: it has none any more."""
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
