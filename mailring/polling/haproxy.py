"""HAProxy's runtime API, read until its servers reach a state (one node's, or every node's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks import NotYet
from mailring.checks.client_address import ServerState, server_reached, server_states, unsettled_servers
from mailring.polling.wait import eventually

if TYPE_CHECKING:
    from mailring.cluster import Cluster


def wait_server(cluster: Cluster, node: str, backend: str, server: str, up: bool,
                deadline_s: float) -> ServerState:
    """Wait until HAProxy on ``node`` reports ``backend/server`` UP (or DOWN); return its state."""
    def check() -> ServerState:
        return server_reached(server_states(cluster.haproxy_command(node, "show stat")),
                              node, backend, server, up)

    return eventually(check, deadline_s, f"HAProxy on {node} marking {backend}/{server} "
                      f"{'UP' if up else 'DOWN'}", poll_s=0.1)


def servers_settled(cluster: Cluster, deadline_s: float) -> None:
    """Wait until every running mail node's HAProxy sees every server fully UP ("UP", not
    "UP 1/2" on its way, nor DOWN or MAINT), so the next test starts from a clean cluster."""

    def check() -> None:
        status = cluster.status()
        bad = []
        for node in cluster.topology.mail_nodes:
            if status.nodes[node.name].state != "up":
                continue
            stats = server_states(cluster.haproxy_command(node.name, "show stat"))
            bad += unsettled_servers(node.name, stats)
        if bad:
            raise NotYet(f"{len(bad)} servers not settled: " + "; ".join(bad[:4]))

    eventually(check, deadline_s, "every HAProxy seeing every server UP")
