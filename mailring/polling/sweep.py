"""Sweep every service on every VIP from the client, once or until nothing is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks import NotYet
from mailring.checks.sweep import problems, targets
from mailring.polling.wait import eventually

if TYPE_CHECKING:
    from mailring.client import Client
    from mailring.topology import Topology


def sweep(client: Client, topo: Topology, expected: dict[str, str | None]) -> list[str]:
    """Problems seen, one line each ([] when every service on every VIP answers from its owner);
    each attempt may take the driver's ``SWEEP_TIMEOUT_S``."""
    res = client.request({"kind": "sweep", "targets": targets(topo, client.cluster.SWEEP_TIMEOUT_S)})
    return problems(topo, res["results"], expected)


def wait_clean(client: Client, topo: Topology, expected: dict[str, str | None], deadline_s: float,
               what: str) -> None:
    """Wait until a sweep finds nothing wrong (clients' ARP caches follow CARP's gratuitous ARPs),
    for ``deadline_s`` plus the driver's ``SETTLE_S``."""

    def check() -> None:
        found = sweep(client, topo, expected)
        if found:
            raise NotYet(f"{len(found)} problems: " + "; ".join(found[:4]))

    eventually(check, deadline_s + client.cluster.SETTLE_S, what)
