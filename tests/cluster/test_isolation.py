"""A server loses its network but keeps running: its VIPs move; healed, they come back, and at
no moment, during the isolation or the heal, do two reachable nodes hold one VIP (but the
node's own VIP and its backup while the node takes it back, within that handover's window)."""

from __future__ import annotations

import time

import pytest

from mailring.checks.convergence import deadline_s
from mailring.checks.holders import handovers
from mailring.polling.convergence import converge
from mailring.polling.holders import HolderWatch
from mailring.polling.sweep import wait_clean

pytestmark = [pytest.mark.destructive, pytest.mark.long]


def test_isolated_node_loses_its_vips_and_gets_them_back_without_split_brain(
        cluster, client, nemesis, topology, mail_node):
    converge(cluster, failed=set())
    with HolderWatch(cluster) as watch:  # every holder read from before the cut to after the heal
        fault = nemesis.isolate(mail_node)
        status = converge(cluster, failed={mail_node})
        assert status.nodes[mail_node].state == "isolated"
        wait_clean(client, topology, topology.expected_owners({mail_node}), deadline_s(topology, {mail_node}),
                   f"every service on every VIP answering from its new owner while {mail_node} is cut off")
        t_heal = time.time()
        nemesis.heal(fault)
        # the healed node's CARP may start that much after the link is back (VMs: systemd
        # restarts the ucarp that exited with its link); the handover window counts from then
        t_carp = time.time() + cluster.SETTLE_S
        converge(cluster, failed=set())
        wait_clean(client, topology, topology.expected_owners(), deadline_s(topology),
                   f"every service on every VIP answering from its owner after {mail_node} is back")
    # the healed node takes its own VIPs back by preemption: the old holder lets go when it
    # hears the owner's advert, so those two may show together for that moment (however late
    # the owner's CARP came back: the window reaches past its first sample), nothing else
    forgiven = watch.check(allowed=handovers(topology, t_heal, {mail_node}, set(), done=t_carp,
                                             late_s=cluster.GUEST_LATE_S))
    print("handover doubles forgiven:", forgiven or "none")
