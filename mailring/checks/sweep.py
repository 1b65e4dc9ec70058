"""Every service on every VIP, probed at once from the client, checked against the model.

A sweep answers "does the cluster serve what the topology promises, from the
node the model expects?": the SMTP and POP3/IMAP greetings name the serving
node, so a VIP answered by the wrong node (a backup, a split brain) shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailring.protocols import named_greetings

if TYPE_CHECKING:
    from mailring.client import Client
    from mailring.topology import Topology

NAMED = named_greetings()  # protocols whose greeting names the serving node


def targets(topo: Topology) -> list[dict[str, Any]]:
    """One banner target per (service, VIP), named '<service>@<VIP>'."""
    out = []
    for v in topo.vips:
        for svc in topo.services.values():
            out.append({"name": f"{svc.name}@{v.address}", "host": str(v.address), "port": svc.port,
                        "protocol": svc.protocol, "tls": svc.tls, "timeout": 2.0})
    return out


def sweep(client: Client, topo: Topology, expected: dict[str, str | None]) -> list[str]:
    """Problems seen, one line each ([] when every service on every VIP answers from its owner)."""
    res = client.request({"kind": "sweep", "targets": targets(topo)})
    problems = []
    for name, r in res["results"].items():
        svc_name, vip = name.split("@")
        owner = expected.get(vip)
        if owner is None:
            continue  # the model says nobody can serve this VIP
        if not r["ok"]:
            problems.append(f"{name}: {r.get('error')}")
        elif topo.services[svc_name].protocol in NAMED and owner not in r.get("banner", ""):
            problems.append(f"{name}: served by the wrong node ({r.get('banner')!r}, expected {owner})")
    return sorted(problems)


def wait_clean(client: Client, topo: Topology, expected: dict[str, str | None], deadline_s: float,
               what: str) -> None:
    """Wait until a sweep finds nothing wrong (clients' ARP caches follow CARP's gratuitous ARPs)."""
    from mailring.checks.wait import NotYet, eventually

    def check() -> None:
        problems = sweep(client, topo, expected)
        if problems:
            raise NotYet(f"{len(problems)} problems: " + "; ".join(problems[:4]))

    eventually(check, deadline_s, what)
