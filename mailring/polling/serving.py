"""Open fresh sessions on a VIP until the node the greeting names is the one wanted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks import NotYet
from mailring.checks.serving import greeting_node
from mailring.polling.wait import eventually

if TYPE_CHECKING:
    from mailring.client import Client
    from mailring.topology import Topology


def served_by(client: Client, topo: Topology, vip: str, service: str) -> str:
    """The node named in the greeting of one fresh session on ``vip``/``service``."""
    svc = topo.services[service]
    return greeting_node(topo, vip, service, client.banner(vip, svc.port, svc.protocol))


def served_by_each(client: Client, topo: Topology, sessions: list[tuple[str, str]]) -> list[str]:
    """The node named in each greeting of fresh sessions on (vip, service) pairs, all opened
    at once (independent connections; results in the pairs' order)."""
    from mailring.client import banner_request

    reqs = [banner_request(vip, topo.services[service].port, topo.services[service].protocol)
            for vip, service in sessions]
    return [greeting_node(topo, vip, service, res)
            for (vip, service), res in zip(sessions, client.each(reqs), strict=True)]


def wait_served(client: Client, topo: Topology, vip: str, service: str, want, deadline_s: float,
                what: str) -> str:
    """Wait until a fresh session on vip/service is served by a node for which want(node) holds,
    for ``deadline_s`` plus the driver's ``SETTLE_S``."""

    def check() -> str:
        node = served_by(client, topo, vip, service)
        if not want(node):
            raise NotYet(f"{service}@{vip} served by {node}")
        return node

    return eventually(check, deadline_s + client.cluster.SETTLE_S, what)
