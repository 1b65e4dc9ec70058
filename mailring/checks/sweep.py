"""Every service on every VIP, probed at once from the client, judged against the model.

A sweep answers "does the cluster serve what the topology promises, from the
node the model expects?": the SMTP and POP3/IMAP greetings name the serving
node, so a VIP answered by the wrong node (a backup, a split brain) shows.
``targets`` says what to probe, ``problems`` judges the answers;
``mailring.polling.sweep`` sends the probe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailring.protocols import named_greetings

if TYPE_CHECKING:
    from mailring.topology import Topology

NAMED = named_greetings()  # protocols whose greeting names the serving node


def targets(topo: Topology, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """One banner target per (service, VIP), named '<service>@<VIP>', each waiting ``timeout_s``."""
    out = []
    for v in topo.vips:
        for svc in topo.services.values():
            out.append({"name": f"{svc.name}@{v.address}", "host": str(v.address), "port": svc.port,
                        "protocol": svc.protocol, "tls": svc.tls, "timeout": timeout_s})
    return out


def problems(topo: Topology, results: dict[str, dict[str, Any]],
             expected: dict[str, str | None]) -> list[str]:
    """One line per '<service>@<VIP>' answer that failed or came from another node than
    ``expected`` says ([] when every service on every VIP answers from its owner)."""
    out = []
    for name, r in results.items():
        svc_name, vip = name.split("@")
        owner = expected.get(vip)
        if owner is None:
            continue  # the model says nobody can serve this VIP
        if not r["ok"]:
            out.append(f"{name}: {r.get('error')}")
        elif topo.services[svc_name].protocol in NAMED and owner not in r.get("banner", ""):
            out.append(f"{name}: served by the wrong node ({r.get('banner')!r}, expected {owner})")
    return sorted(out)
