"""Benchmark: the vagrant driver on VMs (run inside the confinement, see docs/vagrant.md).

    .venv/bin/python -m mailring.drivers.vagrant.confine --lab bench -- \\
        .venv/bin/python benchmarks/vagrant.py [--topology fixtures/topology-vm.yaml]

Prints: `up` of the whole topology (per VM; it prints its snapshot save),
status() latency, snapshot restore (until ready again), crash until the VIPs converge on the
predicted nodes (against CARP's bound), boot until ready and converged, and
`down`. Figures, not assertions; hold the heavy lock (each TCG VM takes a core).
"""

from __future__ import annotations

import argparse
import statistics
import time

from mailring.cluster import open_cluster
from mailring.polling.convergence import converge
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
    args = p.parse_args()
    topo = load(args.topology)
    c = open_cluster(topo, "vagrant", args.lab)
    try:
        up = timed(f"up ({len(topo.nodes)} VMs, provisioned, converged, snapshot)", c.up)
        print(f"up per VM: {up / len(topo.nodes):.1f} s")
        lat = []
        for _ in range(args.status_calls):
            t0 = time.monotonic()
            c.status()
            lat.append(time.monotonic() - t0)
        print(f"status(): median {statistics.median(lat) * 1000:.0f} ms "
              f"(min {min(lat) * 1000:.0f}, max {max(lat) * 1000:.0f}) over {len(lat)} calls")
        # up() prints how long its snapshot save took
        timed("snapshot restore until ready and converged", c.reset)
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
