"""Is the lab's traffic confined? Judgements over ``ip -j`` output, as pure functions.

The lab keeps its network to namespaces it creates (mailring.drivers.lab.netns):
the host's namespace has no interface, address or route into the lab network,
the bridge's namespace has nothing but the bridge and one port per node (no
uplink, no address, no route), and nodes have no route off the lab network
(no default route). Each function takes what ``ip -j`` printed in one
namespace and returns the problems it sees, one line each; [] means confined.
The lab suite (tests/cluster/test_confinement.py) feeds them the live
namespaces; unit tests feed them leaking samples, so a check that cannot fail
would show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, ip_interface, ip_network
from typing import Any

MULTICAST = ip_network("224.0.0.0/4")  # CARP adverts; never routed off the link


def _inet(link: Mapping[str, Any]) -> list[Any]:
    return [ip_interface(f"{a['local']}/{a.get('prefixlen', 32)}")
            for a in link.get("addr_info", []) if a.get("family") == "inet"]


def _route_net(route: Mapping[str, Any]) -> IPv4Network | None:
    """A route's destination; None for the default route."""
    dst = str(route.get("dst", ""))
    return None if dst == "default" else ip_network(dst, strict=False)  # type: ignore[return-value]


def host_problems(network: IPv4Network, links: Iterable[Mapping[str, Any]],
                  routes: Iterable[Mapping[str, Any]], nsids: Mapping[int, str],
                  lab_namespaces: Iterable[str]) -> list[str]:
    """The host namespace: no address or route whose network overlaps the lab network,
    no link (a veth end) whose peer lives in one of the lab's namespaces.

    ``links``: ``ip -j addr``; ``routes``: ``ip -j route``; ``nsids``: ``ip -j netns list-id``
    as {nsid: name}. The default route is not "into" the lab network: it leads elsewhere.
    """
    lab = set(lab_namespaces)
    out = []
    for link in links:
        name = link.get("ifname", "?")
        for iface in _inet(link):
            if iface.network.overlaps(network):
                out.append(f"host: address {iface} on {name} is in the lab network {network}")
        peer = nsids.get(link.get("link_netnsid", -1))
        if peer in lab:
            out.append(f"host: link {name} has its other end in the lab's namespace {peer}")
    for route in routes:
        net = _route_net(route)
        if net is not None and net.overlaps(network):
            out.append(f"host: route {route.get('dst')} dev {route.get('dev')} leads into the lab "
                       f"network {network}")
    return out


def bridge_problems(namespace: str, bridge: str, ports: Mapping[str, str],
                    links: Iterable[Mapping[str, Any]], routes: Iterable[Mapping[str, Any]],
                    nsids: Mapping[int, str]) -> list[str]:
    """The bridge's namespace: only lo, the bridge and one port per node, each port on the
    bridge with its other end in that node's namespace; no address, no route (no uplink).

    ``ports``: port name -> the node namespace its peer must be in.
    """
    out = []
    seen = set()
    for link in links:
        name = link.get("ifname", "?")
        seen.add(name)
        for iface in _inet(link):
            if not iface.ip.is_loopback:
                out.append(f"{namespace}: address {iface} on {name}: the bridge's namespace must "
                           "have none")
        if name in ("lo", bridge):
            continue
        if name not in ports:
            out.append(f"{namespace}: link {name} is neither the bridge {bridge} nor a node's port "
                       "(an uplink?)")
            continue
        if link.get("master") != bridge:
            out.append(f"{namespace}: port {name} is not on the bridge {bridge}")
        peer = nsids.get(link.get("link_netnsid", -1))
        if peer != ports[name]:
            where = peer or "this or an unnamed namespace"
            out.append(f"{namespace}: port {name}'s other end is in {where}, not in {ports[name]}")
    out += [f"{namespace}: port {p} of {ns} is missing" for p, ns in ports.items() if p not in seen]
    out += [f"{namespace}: route {r.get('dst')} dev {r.get('dev')}: the bridge's namespace must "
            "route nothing" for r in routes]
    return out


def node_problems(node: str, network: IPv4Network, routes: Iterable[Mapping[str, Any]]) -> list[str]:
    """A node's namespace: no default route, and every route stays inside the lab network
    (or is the multicast route CARP needs)."""
    out = []
    for route in routes:
        net = _route_net(route)
        if net is None:
            out.append(f"{node}: default route via {route.get('gateway', route.get('dev'))}: "
                       "nodes must have none")
        elif not (net.subnet_of(network) or net.subnet_of(MULTICAST)):  # type: ignore[arg-type]
            out.append(f"{node}: route {route.get('dst')} dev {route.get('dev')} leaves the lab "
                       f"network {network}")
    return out


def nsid_names(listing: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """``ip -j netns list-id`` as {nsid: name} (entries without a name are left out)."""
    return {int(e["nsid"]): str(e["name"]) for e in listing if "name" in e}
