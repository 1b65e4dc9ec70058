"""The lab's traffic stays in namespaces the lab made (lab driver only).

The host's namespace has no interface, address or route into the lab network;
the bridge's namespace holds the bridge and one port per node and nothing
else (no uplink); nodes have no default route and no route off the lab
network. What each namespace holds is read with ``ip -j`` and judged by
mailring.confinement (whose unit tests show each check failing on a leak).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from mailring.confinement import bridge_problems, host_problems, node_problems, nsid_names

pytestmark = pytest.mark.lab_only("reads the lab's own namespaces with ip -n")


def ip_json(namespace: str | None, *args: str) -> list[dict[str, Any]]:
    argv = ["ip", *(["-n", namespace] if namespace else []), "-j", *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, f"`{' '.join(argv)}` exited {res.returncode}: {res.stderr.strip()}"
    return json.loads(res.stdout or "[]")


def test_the_host_namespace_has_no_interface_address_or_route_into_the_lab(cluster, topology):
    names = cluster.names
    lab = [names.lan, *(names.netns(n) for n in topology.nodes)]
    links = ip_json(None, "addr")
    assert links, "ip -j addr in the host namespace listed no link at all"
    problems = host_problems(topology.network, links, ip_json(None, "-4", "route"),
                             nsid_names(ip_json(None, "netns", "list-id")), lab)
    assert not problems, "\n".join(problems)


def test_the_bridge_namespace_has_no_uplink(cluster, topology):
    names = cluster.names
    lan = names.lan
    links = ip_json(lan, "addr")
    ports = {names.port(n): names.netns(n) for n in topology.nodes}
    problems = bridge_problems(lan, names.bridge, ports, links, ip_json(lan, "-4", "route"),
                               nsid_names(ip_json(lan, "netns", "list-id")))
    assert not problems, "\n".join(problems)


def test_nodes_have_no_default_route(cluster, topology):
    problems = []
    for node in topology.nodes:
        routes = ip_json(cluster.names.netns(node), "-4", "route")
        # the node's own connected route is there: the check read a live table
        assert any(r.get("dst") == str(topology.network) for r in routes), f"{node}: {routes}"
        problems += node_problems(node, topology.network, routes)
    assert not problems, "\n".join(problems)
