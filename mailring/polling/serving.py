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


def wait_served(client: Client, topo: Topology, vip: str, service: str, want, deadline_s: float,
                what: str) -> str:
    """Wait until a fresh session on vip/service is served by a node for which want(node) holds."""

    def check() -> str:
        node = served_by(client, topo, vip, service)
        if not want(node):
            raise NotYet(f"{service}@{vip} served by {node}")
        return node

    return eventually(check, deadline_s, what)
