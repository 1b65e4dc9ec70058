"""The vagrant driver's record of a lab between CLI calls: ``build/<lab>/vagrant-state.json``.

It holds the faults the driver injected (node -> crashed | isolated), which a
VM's state alone cannot tell apart from a halt, and the digest of the bundles
the provisioned snapshot was taken with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class LabState:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.path)

    def update(self, **values: Any) -> None:
        state = self.load()
        state.update(values)
        self.save(state)

    def faults(self) -> dict[str, str]:
        return dict(self.load().get("faults", {}))

    def set_fault(self, node: str, fault: str | None) -> None:
        faults = self.faults()
        if fault is None:
            faults.pop(node, None)
        else:
            faults[node] = fault
        self.update(faults=faults)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
