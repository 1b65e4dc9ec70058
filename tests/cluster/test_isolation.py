"""A server loses its network but keeps running: its VIPs move; healed, no split brain remains."""

from __future__ import annotations

import pytest

from mailring.checks.convergence import converge, deadline_s
from mailring.checks.sweep import wait_clean

pytestmark = pytest.mark.destructive


def test_isolated_node_loses_its_vips_and_gets_them_back_without_split_brain(
        cluster, client, nemesis, topology):
    node = topology.mail_nodes[3].name  # the article's example: mail04
    fault = nemesis.isolate(node)
    status = converge(cluster, failed={node})
    assert status.nodes[node].state == "isolated"
    wait_clean(client, topology, topology.expected_owners({node}), deadline_s(topology, {node}),
               f"every service on every VIP answering from its new owner while {node} is cut off")
    nemesis.heal(fault)
    status = converge(cluster, failed=set())
    doubles = {vip: held for vip, held in status.holders.items() if len(held) > 1}
    assert not doubles, f"split brain after heal: {doubles}"
    wait_clean(client, topology, topology.expected_owners(), deadline_s(topology),
               f"every service on every VIP answering from its owner after {node} is back")
