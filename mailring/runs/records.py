"""What goes into a run folder's JSON lines: probe operations, fault events, ownership samples.

Probe targets are named ``<service>@<host>`` (host: a VIP or a DNS name), so
every history line says which service and which address it measured.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailring.runs.store import FAULTS, HISTORY, OWNERSHIP, RunFolder

if TYPE_CHECKING:
    from mailring.client import Op
    from mailring.cluster import Cluster, Status


def split_target(name: str) -> tuple[str, str]:
    """'smtp@192.168.56.101' -> ('smtp', '192.168.56.101'); a name without '@' is its own host."""
    service, sep, host = name.partition("@")
    return (service, host) if sep else ("", name)


def history_line(op: Op, **extra: Any) -> dict[str, Any]:
    service, host = split_target(op.target)
    line = {"t": op.t, "end": op.end, "target": op.target, "service": service, "host": host,
            "outcome": op.type, "latency_ms": round((op.end - op.t) * 1000, 1), "error": op.error}
    line.update(extra)
    return line


def record_history(folder: RunFolder, ops: list[Op], **extra: Any) -> None:
    folder.append(HISTORY, (history_line(op, **extra) for op in sorted(ops, key=lambda o: o.t)))


def record_fault(folder: RunFolder, what: str, fault: str, target: str, t: float | None = None,
                 **extra: Any) -> None:
    """One fault event: ``what`` is invoke or heal; ``target`` pairs a heal with its invoke."""
    folder.append(FAULTS, [{"t": time.time() if t is None else t, "what": what, "fault": fault,
                            "target": target, **extra}])


def record_ownership(folder: RunFolder, status: Status, t: float | None = None) -> dict[str, Any]:
    sample = {"t": time.time() if t is None else t,
              "holders": {vip: list(held) for vip, held in sorted(status.holders.items())}}
    folder.append(OWNERSHIP, [sample])
    return sample


def fault_intervals(events: list[dict[str, Any]], end: float) -> list[dict[str, Any]]:
    """Pair each invoke with the next heal of the same target: {start, end, fault, target, ...}.

    A fault never healed in the record lasts until ``end`` (and says so: ``healed`` False).
    """
    open_: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for ev in sorted(events, key=lambda e: e["t"]):
        if ev["what"] == "invoke":
            open_[ev["target"]] = {**ev, "start": ev["t"]}
        elif ev["what"] == "heal" and ev["target"] in open_:
            out.append({**open_.pop(ev["target"]), "end": ev["t"], "healed": True})
    out.extend({**iv, "end": end, "healed": False} for iv in open_.values())
    return sorted(out, key=lambda iv: iv["start"])


# Daemons whose logs are copied into the run folder at the end.
LOGGED = ("postfix", "dovecot", "haproxy", "carp", "carp-backup", "webmail", "dns")


def collect_logs(folder: RunFolder, cluster: Cluster) -> None:
    """Copy every node's daemon logs to logs/<lab>/<node>/<daemon>.log before the cluster goes."""
    save_logs(cluster, folder.path / "logs" / cluster.lab)


def save_logs(cluster: Cluster, base: Path) -> None:
    """Every node's daemon logs under ``base/<node>/<daemon>.log``; a node that cannot be
    read (a crashed VM) leaves out only its own."""
    for node in cluster.topology.nodes:
        for daemon in LOGGED:
            try:
                text = cluster.log_text(node, daemon)
            except Exception:  # noqa: BLE001 - a crashed VM: keep what the others have
                continue
            if text:
                (base / node).mkdir(parents=True, exist_ok=True)
                (base / node / f"{daemon}.log").write_text(text)
