"""The article's domino effect: crash servers one after another and watch the load.

With two VIPs per server backed by different neighbours, every VIP stays
reachable and the load stays spread; with the first design (one VIP per
server, each backed by the next) a chain of crashes piles onto one server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailring.checks.convergence import deadline_s
from mailring.client import Client
from mailring.nemesis import Nemesis
from mailring.polling.convergence import converge
from mailring.polling.sweep import wait_clean

pytestmark = [pytest.mark.destructive, pytest.mark.long]


def load_of(status, live: list[str]) -> dict[str, int]:
    counts = {n: 0 for n in live}
    for held in status.holders.values():
        for node in held:
            counts[node] = counts.get(node, 0) + 1
    return counts


def test_ring_keeps_every_vip_reachable_and_the_load_spread(cluster, client, nemesis, topology):
    chain = [n.name for n in topology.mail_nodes[:3]]
    failed: set[str] = set()
    for node in chain:
        nemesis.crash(node)
        failed.add(node)
        status = converge(cluster, failed=failed)
        live = [n.name for n in topology.mail_nodes if n.name not in failed]
        load = load_of(status, live)
        assert load == topology.load(failed), f"after crashing {sorted(failed)}: {load}"
        assert max(load.values()) <= topology.load_bound(len(live)), load
        wait_clean(client, topology, topology.expected_owners(failed), deadline_s(topology, failed),
                   f"every VIP reachable after crashing {sorted(failed)}")


@pytest.mark.lab_only("a second cluster (the first design) beside the first; too heavy as VMs")
@pytest.mark.xdist_group("noproxy")  # test_client_address's PROXY-off tests' lab: one worker runs them all
def test_first_design_piles_the_crashed_chain_onto_one_server(cluster_factory, topology):
    # the article's cluster as it ran: the first design with PROXY off, the same second lab
    # test_client_address's PROXY-off tests use (PROXY plays no part in where VIPs go)
    domino = cluster_factory(Path(topology.path).parent / "topology-noproxy.yaml", "np")
    topo = domino.topology
    assert len(topo.vips) == len(topo.mail_nodes), f"{topo.path} is not the first design"
    chain = [n.name for n in topo.mail_nodes[:3]]
    converge(domino, failed=set())  # whatever used the lab before left it as the model says
    with Nemesis(domino) as nem:
        failed: set[str] = set()
        for node in chain:
            nem.crash(node)
            failed.add(node)
            status = converge(domino, failed=failed)
            wait_clean(Client(domino), topo, topo.expected_owners(failed), deadline_s(topo, failed),
                       f"every VIP of the first design reachable after crashing {sorted(failed)}")
        live = [n.name for n in topo.mail_nodes if n.name not in failed]
        load = load_of(status, live)
        heir = topo.mail_nodes[3].name  # the next server after the chain
        assert load == topo.load(failed)
        assert load[heir] == len(chain) + 1, f"expected every crashed VIP on {heir}: {load}"
        assert load[heir] > topo.load_bound(len(live)) - 1  # more than its share: the domino
