"""Does the cluster match the model? Wait for it, with a deadline derived from the topology."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks.wait import NotYet, eventually

if TYPE_CHECKING:
    from mailring.cluster import Cluster, Status
    from mailring.topology import Topology

# ucarp checks its timers on a one-second tick and reads adverts through libpcap
# with up to a second of delay; kernel CARP needs neither. Margin in advbase units.
CARP_MARGIN_ADVBASE = 2.0
MARGIN_S = 1.0


def deadline_s(topo: Topology, failed: set[str] | frozenset[str] = frozenset()) -> float:
    """3 x advbase + the largest new owner's skew/256, plus the margin; a VIP taken over
    by a deeper backup (the lab's ucarp waits two advbase more per rank) gets that too."""
    worst = max(topo.failover_bound_s(v, failed) + 2 * max(topo.takeover_rank(v, failed), 0) * topo.advbase
                for v in topo.vips)
    return worst + CARP_MARGIN_ADVBASE * topo.advbase + MARGIN_S


def differences(topo: Topology, status: Status, failed: set[str]) -> dict[str, tuple[str | None, list[str]]]:
    """VIP -> (expected owner, actual holders) for every VIP that differs from the model."""
    out = {}
    for vip, owner in topo.expected_owners(failed).items():
        held = status.holders.get(vip, [])
        if held != ([owner] if owner else []):
            out[vip] = (owner, held)
    return out


def describe(diff: dict[str, tuple[str | None, list[str]]]) -> str:
    return "; ".join(f"VIP {vip}: expected owner {exp or 'nobody'}, held by "
                     f"{', '.join(held) or 'nobody'}" for vip, (exp, held) in sorted(diff.items()))


def converge(cluster: Cluster, failed: set[str] | None = None, deadline: float | None = None) -> Status:
    """Wait until every VIP is held by exactly the node the model expects for ``failed``.

    ``failed`` defaults to the nodes the cluster's recorded faults take out of CARP
    (``Cluster.carp_failed``: crashed, isolated, ... as the nodes' OS behaves).
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
    return eventually(check, deadline or deadline_s(topo, down), "VIP ownership as the model predicts")


def servers_settled(cluster: Cluster, deadline_s: float) -> None:
    """Wait until every running mail node's HAProxy sees every server fully UP ("UP", not
    "UP 1/2" on its way, nor DOWN or MAINT), so the next test starts from a clean cluster."""
    from mailring.checks.client_address import server_states

    def check() -> None:
        status = cluster.status()
        bad = []
        for node in cluster.topology.mail_nodes:
            if status.nodes[node.name].state != "up":
                continue
            stats = server_states(cluster.haproxy_command(node.name, "show stat"))
            for (backend, server), st in stats.items():
                if st.status != "UP":
                    bad.append(f"{node.name}: {backend}/{server} {st.status}")
        if bad:
            raise NotYet(f"{len(bad)} servers not settled: " + "; ".join(bad[:4]))

    eventually(check, deadline_s, "every HAProxy seeing every server UP")
