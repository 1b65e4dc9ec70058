"""Outage figures measured by failover tests, printed as a table and saved as JSON.

Each worker process appends rows while tests run; at the end of the session
the rows go to the session's run folder as ``outages[-<worker>].json`` and, on the
controller, into one merged ``outages.json`` and a printed table.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class Outage:
    test: str
    fault: str
    vip: str
    service: str
    outage_ms: float | None  # None: never recovered
    bound_ms: float  # the protocol bound the test allowed (before margin)
    attempts: int  # failed attempts seen in the window

    @property
    def ratio(self) -> float | None:
        return None if self.outage_ms is None else self.outage_ms / self.bound_ms


class OutageLog:
    def __init__(self) -> None:
        self.rows: list[Outage] = []

    def record(self, row: Outage) -> None:
        self.rows.append(row)

    def save(self, folder: Path) -> Path:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        path = folder / (f"outages-{worker}.json" if worker else "outages.json")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in self.rows], indent=1))
        tmp.replace(path)
        return path


def merge(folder: Path) -> list[Outage]:
    """Every worker's rows (or the single process's), merged into outages.json."""
    rows: list[Outage] = []
    parts = sorted(folder.glob("outages-*.json")) or [p for p in [folder / "outages.json"] if p.exists()]
    for part in parts:
        rows.extend(Outage(**r) for r in json.loads(part.read_text()))
    if rows:
        tmp = folder / "outages.json.tmp"
        tmp.write_text(json.dumps([asdict(r) for r in rows], indent=1))
        tmp.replace(folder / "outages.json")
    return rows


def table(rows: list[Outage]) -> str:
    t = Table("test", "fault", "VIP", "service", "outage ms", "bound ms", "ratio",
              title="outages seen from the client")
    for r in rows:
        ms = "never recovered" if r.outage_ms is None else f"{r.outage_ms:.0f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        t.add_row(r.test, r.fault, r.vip, r.service, ms, f"{r.bound_ms:.0f}", ratio)
    console = Console(width=160, record=True)
    with console.capture() as cap:
        console.print(t)
    return cap.get()
