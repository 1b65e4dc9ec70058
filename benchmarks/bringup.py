"""Benchmark: lab bring-up (until every service on every VIP answers from its owner) and teardown.

Prints, per topology, the median/min/max of `up` and `down` over RUNS runs and
the peak resident memory of the lab's processes. Figures, not assertions:
run as root, e.g. `.venv/bin/python benchmarks/bringup.py [--runs 3] [--ring 20]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mailring.cluster import open_cluster
from mailring.topology import DEFAULT_TOPOLOGY, load
from mailring.topology.generate import write_ring


def lab_pss_mib(lab: str) -> float:
    """Proportional set size (shared pages split among sharers) of the lab's processes, MiB."""
    total = 0
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for ns in (line.split()[0] for line in out.splitlines() if line.startswith(f"mr-{lab}-")):
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
    return total / 1024


def bench(topology_path: Path, runs: int, lab: str) -> None:
    topo = load(topology_path)
    cluster = open_cluster(topo, "lab", lab)
    ups, downs, rss = [], [], []
    try:
        for _ in range(runs):
            t = time.perf_counter()
            cluster.up()
            ups.append(time.perf_counter() - t)
            rss.append(lab_pss_mib(lab))
            t = time.perf_counter()
            cluster.down()
            downs.append(time.perf_counter() - t)
    finally:
        cluster.down()
    name = f"{len(topo.mail_nodes)}+1 nodes, {len(topo.vips)} VIPs"
    for what, xs in (("up", ups), ("down", downs)):
        print(f"{name:28s} {what:5s} median {statistics.median(xs):6.2f} s  "
              f"min {min(xs):6.2f}  max {max(xs):6.2f}  ({runs} runs)")
    print(f"{name:28s} peak PSS of the lab's processes {max(rss):.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--ring", type=int, default=20, help="also a generated ring of N mail nodes (0: skip)")
    p.add_argument("--lab", default="bench")
    args = p.parse_args()
    bench(DEFAULT_TOPOLOGY, args.runs, args.lab)
    if args.ring:
        with tempfile.TemporaryDirectory() as tmp:
            bench(write_ring(args.ring, Path(tmp) / "ring.yaml"), args.runs, args.lab)


if __name__ == "__main__":
    main()
