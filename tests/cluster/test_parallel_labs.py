"""Two labs at once never see each other.

A second lab of the same topology (the same addresses, vhids and names, in
namespaces named for it) runs beside the session's lab. A server of the second
lab crashes and its VIPs fail over there; in the session's lab meanwhile every
VIP stays with its owner in every status sample, and a probe on client01 that
opens IMAP on every VIP five times a second never misses once.
"""

from __future__ import annotations

import pytest

from mailring.checks import NotYet
from mailring.checks.timelines import PROBE_TIMEOUT_S, failures_of, targets_for
from mailring.nemesis import Nemesis
from mailring.polling.convergence import converge
from mailring.polling.timelines import wait_sampling
from mailring.polling.wait import eventually

# no fault touches the session's lab: the crash is in the second lab, healed by its own Nemesis
pytestmark = [pytest.mark.lab_only("a second lab beside the session's; too heavy as VMs"), pytest.mark.long]

HZ = 5


def test_a_crash_in_one_lab_changes_nothing_in_the_other(cluster, client, topology, cluster_factory):
    other = cluster_factory(topology.path, "par")
    assert other.lab != cluster.lab
    expected = topology.expected_owners(set())
    victim = topology.mail_nodes[0].name
    moved_there = topology.expected_owners({victim})
    converge(cluster, failed=set())
    vips = list(expected)
    targets = targets_for(topology, vips, services=("imap",), hz=HZ)
    names = [t["name"] for t in targets]
    samples = 0

    def steady(when: str) -> None:
        nonlocal samples
        st = cluster.status()
        samples += 1
        state = st.nodes[victim].state
        assert state == "up", f"{when}: {victim} of lab {cluster.lab} is {state}"
        wrong = {v: h for v, h in st.holders.items() if h != [expected[v]]}
        assert not wrong, f"{when}: lab {cluster.lab}'s VIPs left their owners: {wrong}"

    with client.timeline(targets, hz=HZ, timeout=PROBE_TIMEOUT_S, max_seconds=300) as tl:
        wait_sampling(tl, names)
        t0 = tl.now()
        with Nemesis(other) as nem:
            crash = nem.crash(victim)
            # the other lab fails over (this could not pass if its crash did nothing) ...
            def failed_over():
                steady(f"while lab {other.lab} fails over")
                st = other.status()
                if not all(st.holders[v] == ([moved_there[v]] if moved_there[v] else []) for v in vips):
                    raise NotYet(f"holders {st.holders}")
                return st

            st = eventually(failed_over, 60, f"lab {other.lab} failing over", poll_s=0.2)
            assert st.nodes[victim].state == "crashed"
            converge(other, failed={victim})
            steady(f"after lab {other.lab} failed over")
            nem.heal(crash)
            converge(other, failed=set())
            steady(f"after lab {other.lab} booted {victim} again")
        ops = tl.stop()
    missed = failures_of(ops, names, t0)  # also fails when a target has under 10 samples
    assert not missed, f"lab {cluster.lab}'s probe missed while lab {other.lab} crashed {victim}: " \
                       f"{missed[:5]}"
    assert samples >= 3
