"""VIP ownership with no faults: every VIP on its owner, none on two nodes."""

from __future__ import annotations


def test_every_vip_is_held_by_the_node_the_model_expects(cluster, topology):
    status = cluster.status()
    assert all(n.state == "up" for n in status.nodes.values()), status.nodes
    expected = topology.expected_owners(set())
    held = {vip: status.holders.get(vip, []) for vip in expected}
    assert held == {vip: [owner] for vip, owner in expected.items()}


def test_every_node_holds_its_own_two_vips(cluster, topology, mail_node):
    status = cluster.status()
    mine = sorted(str(v.address) for v in topology.vips_owned_by(mail_node))
    assert sorted(v for v, h in status.holders.items() if mail_node in h) == mine
