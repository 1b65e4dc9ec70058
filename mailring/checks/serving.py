"""Which node served a session? The greetings name it (Postfix banner, Dovecot greeting).

``mailring.polling.serving`` opens the sessions; this judges their answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailring.checks import NotYet

if TYPE_CHECKING:
    from mailring.topology import Topology


def greeting_node(topo: Topology, vip: str, service: str, res: dict[str, Any]) -> str:
    """The node named in a banner probe's answer ``res`` on ``vip``/``service``; NotYet when the
    session failed or its greeting names no single mail node."""
    if not res["ok"]:
        raise NotYet(f"{service}@{vip}: {res.get('error')}")
    names = [n.name for n in topo.mail_nodes if n.name in res["banner"]]
    if len(names) != 1:
        raise NotYet(f"{service}@{vip}: greeting names no single node: {res['banner']!r}")
    return names[0]


def check_deadline_s(topo: Topology) -> float:
    """How long HAProxy may take to notice a server change: (fall or rise) checks + slack."""
    h = topo.haproxy
    return max(h.all_down_within_s(), h.up_within_s()) + 3.0
