"""Wait until the cluster's VIP holders match the model, within the topology's CARP bound."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks import NotYet
from mailring.checks.convergence import deadline_s, describe, differences
from mailring.polling.wait import eventually

if TYPE_CHECKING:
    from mailring.cluster import Cluster, Status


def converge(cluster: Cluster, failed: set[str] | None = None, deadline: float | None = None) -> Status:
    """Wait until every VIP is held by exactly the node the model expects for ``failed``.

    ``failed`` defaults to the nodes the cluster's recorded faults take out of CARP
    (``Cluster.carp_failed``: crashed, isolated, ... as the nodes' OS behaves).
    The deadline is CARP's bound + margin, plus the driver's ``SETTLE_S`` (emulated guests).
    On timeout the error names each VIP, its expected and its actual owner.
    """
    topo = cluster.topology

    def check() -> Status:
        status = cluster.status()
        down = cluster.carp_failed(status) if failed is None else set(failed)
        diff = differences(topo, status, down)
        if diff:
            raise NotYet(describe(diff))
        return status

    down = cluster.carp_failed() if failed is None else set(failed)
    return eventually(check, deadline or deadline_s(topo, down, cluster.carp_speaker) + cluster.SETTLE_S,
                      "VIP ownership as the model predicts")
