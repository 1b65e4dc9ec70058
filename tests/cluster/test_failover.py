"""Crash a server, watch its VIPs fail over to the predicted neighbours and come back.

A probe timeline on client01 samples SMTP, POP3 and IMAP on the crashed
node's VIPs at 20 Hz; the outage each service saw is measured from the last
success before the crash to the first success after it, and must stay within
CARP's bound (3 x advbase + skew/256) plus the margin of the lab's CARP speaker
(keepalived: one probe timeout and period, so a failover one advbase slow fails;
see mailring.checks.timelines.margin_s). Every other VIP
is watched too (IMAP, at a lower rate): a VIP that should not move must not
miss a single attempt through the crash and the boot. The failback (the owner
preempting its VIPs back after the boot) may cost at most CARP's bound, or, on a
driver whose probe is coarser than that (the VMs' 2 s timeout at 2 Hz), one
attempt lost in the handover (mailring.checks.timelines.failback_allowed_s).

The client also hears the CARP adverts: the time from the crashed owner's last advert of
each of its vhids to the new owner's first must be CARP's bound (within what the speaker
adds and 0.25 s of slack either side), whatever the crash's phase in the advert interval
(mailring.checks.takeover): a failover one advbase slow fails it every time.
"""

from __future__ import annotations

import pytest

from mailring.adverts import watch_adverts
from mailring.checks.takeover import crash_sources, takeovers_of
from mailring.checks.timelines import (
    failback_allowed_s,
    failures_of,
    margin_s,
    outages_of,
    targets_for,
)
from mailring.polling.convergence import converge
from mailring.polling.sweep import sweep
from mailring.polling.timelines import wait_heard, wait_recovered, wait_sampling, wait_settled

pytestmark = [pytest.mark.destructive, pytest.mark.long]

STILL_HZ = 5  # the VIPs that must not move: one service each, sampled more slowly


def test_crash_fails_over_to_both_neighbours_and_boot_fails_back(
        request, record_property, cluster, client, nemesis, outages, topology, mail_node):
    hz, timeout = cluster.PROBE_HZ, cluster.PROBE_TIMEOUT_S  # the driver's rates (VMs: slower)
    margin = margin_s(topology, cluster.carp_speaker, hz, timeout)
    mine = [str(v.address) for v in topology.vips_owned_by(mail_node)]
    before = topology.expected_owners()
    after = topology.expected_owners({mail_node})
    assert len({after[v] for v in mine}) == len(mine), (
        f"{mail_node}'s VIPs " + ", ".join(f"{v} -> {after[v]}" for v in mine)
        + ": the topology sends them to one node; back them with two different neighbours")
    converge(cluster, failed=set())
    targets = targets_for(topology, mine)
    names = [t["name"] for t in targets]
    still = [v for v in before if v not in mine]
    still_targets = targets_for(topology, still, services=("imap",), hz=min(STILL_HZ, hz))
    still_names = [t["name"] for t in still_targets]
    bound = {v: topology.failover_bound_s(v, {mail_node}) for v in mine}
    heard_from, owned = crash_sources(topology, mail_node)

    with watch_adverts(client, heard_from) as watch, \
            client.timeline(targets + still_targets, hz=hz, timeout=timeout, max_seconds=600) as tl:
        # the outage judge needs 10 attempts per target before the boot: take them as a
        # baseline before the crash (half a second on the lab, 5 s at the VMs' 2 Hz)
        wait_sampling(tl, names, minimum=10, deadline_s=30)
        wait_sampling(tl, still_names)
        wait_heard(watch, owned, 3 * topology.advbase + 10)
        t_watch = t_crash = tl.now()  # the probe's clock, as its ops (a VM's is its own)
        crash = nemesis.crash(mail_node)
        status = converge(cluster, failed={mail_node})
        for vip in mine:
            assert status.owner(vip) == after[vip], \
                f"VIP {vip}: expected owner {after[vip]}, held by {status.holders[vip]}"
        for vip, owner in before.items():
            if vip not in mine:
                assert status.owner(vip) == owner, f"VIP {vip} left {owner}, which did not crash"
        wait_recovered(tl, names, t_crash, max(bound.values()) + margin + 5)
        heard = watch.stop()  # the takeover is over: nothing more runs on the client at the boot

        t_boot = tl.now()
        nemesis.heal(crash)
        converge(cluster, failed=set())
        wait_settled(tl, names, 15)
        ops = tl.stop()

    moved = [f"{line} (VIP owned by {before[line.split('@')[1].split(':')[0]]}, which did not crash)"
             for line in failures_of(ops, still_names, t_watch)]
    assert not moved, f"crashing and booting {mail_node} disturbed VIPs that must stay: {'; '.join(moved)}"
    test = request.node.name
    failover = outages_of([o for o in ops if o.t < t_boot], names, t_crash, test,
                          f"crash {mail_node}", bound)
    failback = outages_of(ops, names, t_boot, test, f"boot {mail_node}", bound)
    for row in failover + failback:
        outages.record(row)
        ms = "never recovered" if row.outage_ms is None else f"{row.outage_ms:.0f}"
        record_property(f"outage {row.fault} {row.service}@{row.vip}", f"{ms} ms, bound {row.bound_ms:.0f}")
    takeovers = takeovers_of(heard, topology, mail_node, mine, t_crash, cluster.carp_speaker,
                             cluster.GUEST_LATE_S)
    for tk in takeovers:
        gap = "none" if tk.gap_s is None else f"{tk.gap_s * 1000:.0f} ms"
        record_property(f"takeover {tk.vip} {tk.old}->{tk.new}", f"{gap} between adverts, "
                        f"bound {tk.bound_s * 1000:.0f}")
    problems = [p for tk in takeovers if (p := tk.problem())]
    assert not problems, f"crashing {mail_node}: " + "; ".join(problems)
    for row in failover:
        assert row.outage_ms is not None and row.outage_ms > 0, f"{row.service}@{row.vip} saw no outage"
        allowed = row.bound_ms + margin * 1000
        assert row.outage_ms <= allowed, (
            f"{row.service}@{row.vip}: outage {row.outage_ms:.0f} ms after crashing {mail_node}, "
            f"more than CARP's bound {row.bound_ms:.0f} ms + margin ({allowed:.0f} ms)")
    for row in failback:
        allowed = failback_allowed_s(row.bound_ms / 1000, hz, timeout) * 1000
        assert row.outage_ms is not None and row.outage_ms <= allowed, (
            f"{row.service}@{row.vip}: failback to {mail_node} cost {row.outage_ms} ms, more than "
            f"{allowed:.0f} ms (CARP's bound, or one probe attempt lost in the handover)")
    assert sweep(client, topology, topology.expected_owners()) == []
