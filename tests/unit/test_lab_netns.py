"""The lab's static neighbours: a MAC per node address, and every other node as a permanent entry."""

from __future__ import annotations

from mailring.cluster import open_cluster
from mailring.drivers.lab import netns
from mailring.topology import DEFAULT_TOPOLOGY, load


def test_each_node_address_gets_its_own_locally_administered_unicast_mac() -> None:
    topo = load(DEFAULT_TOPOLOGY)
    macs = {netns.mac_of(str(n.address)) for n in topo.nodes.values()}
    assert len(macs) == len(topo.nodes)
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0b10 and not first & 0b01, mac  # locally administered, not multicast
    assert netns.mac_of("192.168.56.11") == "02:6d:c0:a8:38:0b"


def test_a_node_has_every_other_node_and_not_itself_as_a_permanent_neighbour() -> None:
    topo = load(DEFAULT_TOPOLOGY)
    cluster = open_cluster(topo, driver="lab", lab="unit")
    node = topo.mail_nodes[0]
    lines = netns.neighbour_lines(cluster._peers(node.name))
    assert len(lines) == len(topo.nodes) - 1
    assert not any(f" {node.address} " in line for line in lines)
    other = topo.mail_nodes[1].address
    assert f"neigh replace {other} lladdr {netns.mac_of(str(other))} nud permanent dev eth0" in lines
