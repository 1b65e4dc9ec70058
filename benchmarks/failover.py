"""Benchmark: crash failover and failback of the lab's CARP speakers, side by side in one run.

For each speaker (keepalived's VRRPv3 and ucarp by default) it brings up one
lab and runs CRASHES bounded cycles on it, crashing the mail nodes in turn:
crash -> its VIPs fail over (the client's probe timeline sees the outage) ->
boot -> the owner takes its VIPs back (the failback outage). A sample is one
VIP taken over: its outage is the worst the client saw on SMTP, POP3 and IMAP
of that VIP (the crash test's probe: 20 Hz, 0.5 s timeout), from the last
success before the crash to the first success after it, divided by CARP's
bound for that VIP (3 x advbase + the new owner's advskew/256). Prints per
speaker the ratio's median, p90 and max, how many samples stay within the
bound plus the speaker's test margin, and the failback outages. Beside the
client's outage it prints the protocol's own time: the gap from the crashed
owner's last advert of a vhid to the new owner's first, as the client heard
them (mailring.checks.takeover), over the same bound. Figures, not
assertions. As root, under the heavy lock:
`.venv/bin/python benchmarks/failover.py [--crashes 15] [--speakers keepalived,ucarp]`
(15 crashes of nodes owning two VIPs each = 30 samples per speaker; about 4 min each).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from dataclasses import dataclass, field

from mailring.adverts import watch_adverts
from mailring.checks.takeover import crash_sources, takeovers_of
from mailring.checks.timelines import HZ, PROBE_TIMEOUT_S, margin_s, outages_of, targets_for
from mailring.client import Client
from mailring.cluster import open_cluster
from mailring.polling.convergence import converge
from mailring.polling.timelines import wait_heard, wait_recovered, wait_sampling, wait_settled
from mailring.speakers import ENV, SPEAKERS
from mailring.topology import DEFAULT_TOPOLOGY, load


@dataclass
class Figures:
    speaker: str
    ratios: list[float] = field(default_factory=list)
    within: int = 0  # samples within bound + the speaker's test margin
    failbacks_ms: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)  # advert gap / bound, per VIP
    gaps_within: int = 0  # gaps the crash test allows
    cycles_s: list[float] = field(default_factory=list)


def p90(xs: list[float]) -> float:
    """The nearest-rank 90th percentile."""
    ordered = sorted(xs)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def crash_cycle(cluster, client: Client, node: str, figures: Figures) -> None:
    """Crash ``node``, wait for its VIPs to move and answer, boot it, wait for them to come back."""
    topo = cluster.topology
    mine = [str(v.address) for v in topo.vips_owned_by(node)]
    targets = targets_for(topo, mine)
    names = [t["name"] for t in targets]
    bound = {v: topo.failover_bound_s(v, {node}) for v in mine}
    margin = margin_s(topo, cluster.carp_speaker)
    converge(cluster, failed=set())
    t0 = time.perf_counter()
    sources, owned = crash_sources(topo, node)
    with watch_adverts(client, sources, max_seconds=120) as watch, \
            client.timeline(targets, hz=HZ, timeout=PROBE_TIMEOUT_S, max_seconds=120) as tl:
        try:
            wait_sampling(tl, names, minimum=10)  # outages_of needs 10 attempts before the boot
            wait_heard(watch, owned, 3 * topo.advbase + 10)
            t_crash = tl.now()
            cluster.crash(node)
            converge(cluster, failed={node})
            wait_recovered(tl, names, t_crash, max(bound.values()) + margin + 5)
            heard = watch.stop()  # as the crash test: the watch ends before the boot
            t_boot = tl.now()
        finally:
            if cluster.faults().get(node) == "crashed":
                cluster.boot(node)
        converge(cluster, failed=set())
        wait_settled(tl, names, 15)
        ops = tl.stop()
    figures.cycles_s.append(time.perf_counter() - t0)
    failover = outages_of([o for o in ops if o.t < t_boot], names, t_crash, "bench", f"crash {node}", bound)
    failback = outages_of(ops, names, t_boot, "bench", f"boot {node}", bound)
    for vip in mine:
        rows = [r for r in failover if r.vip == vip]
        worst = max((r.outage_ms if r.outage_ms is not None else math.inf) for r in rows)
        figures.ratios.append(worst / (bound[vip] * 1000))
        figures.within += worst <= (bound[vip] + margin) * 1000
    figures.failbacks_ms.extend(r.outage_ms if r.outage_ms is not None else math.inf for r in failback)
    for tk in takeovers_of(heard, topo, node, mine, t_crash, cluster.carp_speaker, cluster.GUEST_LATE_S):
        figures.gaps.append(math.inf if tk.gap_s is None else tk.gap_s / tk.bound_s)
        figures.gaps_within += tk.problem() is None


def bench(speaker: str, crashes: int, lab: str) -> Figures:
    os.environ[ENV] = speaker
    topo = load(DEFAULT_TOPOLOGY)
    cluster = open_cluster(topo, "lab", lab)
    figures = Figures(speaker)
    mail = [n.name for n in topo.mail_nodes]
    try:
        cluster.up()
        client = Client(cluster)
        for i in range(crashes):
            node = mail[i % len(mail)]
            before = len(figures.failbacks_ms)
            crash_cycle(cluster, client, node, figures)
            k = len(topo.vips_owned_by(node))
            print(f"  {speaker:10s} crash {i + 1:2d}/{crashes} {node}: ratios "
                  + " ".join(f"{r:.2f}" for r in figures.ratios[-k:])
                  + "  advert gaps " + " ".join(f"{g:.3f}" for g in figures.gaps[-k:])
                  + f"  failback max {max(figures.failbacks_ms[before:], default=0):.0f} ms"
                  + f"  cycle {figures.cycles_s[-1]:.1f} s", flush=True)
    finally:
        cluster.down()
    return figures


def report(f: Figures, topo) -> None:
    margin = margin_s(topo, SPEAKERS[f.speaker])
    n = len(f.ratios)
    print(f"{f.speaker:10s} crash failover outage / CARP bound over {n} samples: "
          f"median {statistics.median(f.ratios):.3f}, p90 {p90(f.ratios):.3f}, max {max(f.ratios):.3f}; "
          f"{f.within}/{n} within bound + margin ({margin:.2f} s)")
    print(f"{f.speaker:10s} takeover gap between the owners' adverts / CARP bound over {len(f.gaps)} "
          f"samples: median {statistics.median(f.gaps):.3f}, min {min(f.gaps):.3f}, max {max(f.gaps):.3f}; "
          f"{f.gaps_within}/{len(f.gaps)} within what the crash test allows")
    print(f"{f.speaker:10s} failback outage over {len(f.failbacks_ms)} service x VIP samples: "
          f"median {statistics.median(f.failbacks_ms):.0f} ms, max {max(f.failbacks_ms):.0f} ms, "
          f"{sum(1 for x in f.failbacks_ms if x == 0)} at 0 ms; "
          f"crash cycle median {statistics.median(f.cycles_s):.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crashes", type=int, default=15, help="crash cycles per speaker (default 15)")
    p.add_argument("--speakers", default="keepalived,ucarp", help="comma-separated: keepalived, ucarp")
    p.add_argument("--lab", default="bench")
    args = p.parse_args()
    topo = load(DEFAULT_TOPOLOGY)
    t = time.perf_counter()
    results = [bench(s, args.crashes, args.lab) for s in args.speakers.split(",")]
    print(f"topology {topo.path}: advbase {topo.advbase} s, {len(topo.mail_nodes)} mail nodes; "
          f"probe {HZ} Hz, timeout {PROBE_TIMEOUT_S} s; {time.perf_counter() - t:.0f} s in all")
    for f in results:
        report(f, topo)


if __name__ == "__main__":
    main()
