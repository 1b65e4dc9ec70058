"""Which node served a session? The greetings name it (Postfix banner, Dovecot greeting)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks.wait import NotYet, eventually

if TYPE_CHECKING:
    from mailring.client import Client
    from mailring.topology import Topology


def served_by(client: Client, topo: Topology, vip: str, service: str) -> str:
    """The node named in the greeting of one fresh session on ``vip``/``service``."""
    svc = topo.services[service]
    res = client.banner(vip, svc.port, svc.protocol)
    if not res["ok"]:
        raise NotYet(f"{service}@{vip}: {res.get('error')}")
    names = [n.name for n in topo.mail_nodes if n.name in res["banner"]]
    if len(names) != 1:
        raise NotYet(f"{service}@{vip}: greeting names no single node: {res['banner']!r}")
    return names[0]


def wait_served(client: Client, topo: Topology, vip: str, service: str, want, deadline_s: float,
                what: str) -> str:
    """Wait until a fresh session on vip/service is served by a node for which want(node) holds."""

    def check() -> str:
        node = served_by(client, topo, vip, service)
        if not want(node):
            raise NotYet(f"{service}@{vip} served by {node}")
        return node

    return eventually(check, deadline_s, what)


def check_deadline_s(topo: Topology) -> float:
    """How long HAProxy may take to notice a server change: (fall or rise) checks + slack."""
    h = topo.haproxy
    return max(h.fall, h.rise) * h.check_interval_ms / 1000 + 3.0
