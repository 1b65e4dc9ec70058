"""Benchmark: the vagrant driver on VMs (run inside the confinement, see docs/vagrant.md).

    .venv/bin/python -m mailring.drivers.vagrant.confine --lab bench -- \\
        .venv/bin/python benchmarks/vms.py [--topology fixtures/topology-vm.yaml]
    MAILRING_SMOKE_BENCH=1 scripts/test.sh vagrant-smoke   (on the smoke's VMs, --reuse)

Prints: `up` of the whole topology (per VM; it prints its snapshot save),
status() latency, healing a stopped daemon and an isolated node vs snapshot restore
(until ready again), crash until the VIPs converge on the
predicted nodes (against CARP's bound), boot until ready and converged, and
`down`. Figures, not assertions; hold the heavy lock (each TCG VM takes a core).

Not named vagrant.py: run as a script, its folder comes first on sys.path, and
the driver's `import vagrant` (python-vagrant) found this file instead.
"""

from __future__ import annotations

import argparse
import statistics
import time

from mailring.checks.serving import check_deadline_s
from mailring.cluster import open_cluster
from mailring.polling.convergence import converge
from mailring.polling.haproxy import servers_settled
from mailring.topology import load


def timed(what: str, fn, *args) -> float:
    t0 = time.monotonic()
    fn(*args)
    took = time.monotonic() - t0
    print(f"{what}: {took:.1f} s", flush=True)
    return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--topology", default="fixtures/topology-vm.yaml")
    p.add_argument("--lab", default="bench")
    p.add_argument("--node", default="mail02", help="the node to crash and boot")
    p.add_argument("--status-calls", type=int, default=20)
    p.add_argument("--reuse", action="store_true",
                   help="the lab's VMs are up and snapshotted already (a kept smoke run): skip up")
    args = p.parse_args()
    topo = load(args.topology)
    c = open_cluster(topo, "vagrant", args.lab)
    try:
        if args.reuse:
            timed("ready check of the running VMs", c.wait_ready)
        else:
            up = timed(f"up ({len(topo.nodes)} VMs, provisioned, converged, snapshot)", c.up)
            print(f"up per VM: {up / len(topo.nodes):.1f} s")
        lat = []
        for _ in range(args.status_calls):
            t0 = time.monotonic()
            c.status()
            lat.append(time.monotonic() - t0)
        print(f"status(): median {statistics.median(lat) * 1000:.0f} ms "
              f"(min {min(lat) * 1000:.0f}, max {max(lat) * 1000:.0f}) over {len(lat)} calls")
        # healing a fault (what the nemesis does after each destructive test) vs restoring
        # the snapshot (reset) as the way back to the model between destructive tests
        mail = [n.name for n in topo.mail_nodes]
        c.stop_daemon(mail[0], "postfix")
        timed(f"heal: postfix started on {mail[0]} until every HAProxy sees every server UP",
              lambda: (c.start_daemon(mail[0], "postfix"),
                       servers_settled(c, 10 * check_deadline_s(topo))))
        c.isolate(mail[-1])
        converge(c, failed={mail[-1]})
        timed(f"heal: {mail[-1]} rejoined until the VIPs converge",
              lambda: (c.rejoin(mail[-1]), converge(c, failed=set())))
        # up() prints how long its snapshot save took
        timed("snapshot restore until ready and converged", lambda: (
            c.reset(), converge(c, failed=set())))
        bound = max(topo.failover_bound_s(str(vip.address), {args.node})
                    for vip in topo.vips_owned_by(args.node))
        t0 = time.monotonic()
        c.crash(args.node)
        converge(c, failed={args.node})
        took = time.monotonic() - t0
        print(f"crash {args.node} until its VIPs are on the predicted nodes (host view, "
              f"status polls): {took:.1f} s, CARP bound {bound:.2f} s")
        timed(f"boot {args.node} until ready and converged", lambda: (
            c.boot(args.node), converge(c, failed=set())))
    finally:
        timed("down", c.down)


if __name__ == "__main__":
    main()
