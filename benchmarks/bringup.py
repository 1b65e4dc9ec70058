"""Benchmark: lab bring-up (until every service on every VIP answers from its owner) and teardown.

Prints, per topology (the shipped 5+1 and generated rings of 20 and 50 mail
nodes), the median/min/max of `up` and `down` over RUNS runs and the peak
proportional set size of the lab's processes plus what its tmpfs holds, with the
machine it ran on.
Figures, not assertions: run as root under the heavy lock, e.g.
`.venv/bin/python benchmarks/bringup.py [--runs 3] [--rings 20,50] [--ring-runs 1]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mailring.cluster import open_cluster
from mailring.drivers.lab.names import LabNames
from mailring.speakers import lab_speaker
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


def lab_tmpfs_mib(lab: str) -> float:
    """What the lab's own tmpfs (build/<lab>: node disks, queues, logs, store) holds, MiB: memory
    too, though no process maps it."""
    st = os.statvfs(LabNames(lab).root)
    return (st.f_blocks - st.f_bfree) * st.f_frsize / 2**20


def machine() -> str:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return (f"{os.cpu_count()} cores ({model}), {int(mem.split()[1]) / 2**20:.1f} GiB, "
            f"Linux {platform.release()}, CARP speaker {lab_speaker().name}")


def bench(topology_path: Path, runs: int, lab: str) -> None:
    topo = load(topology_path)
    cluster = open_cluster(topo, "lab", lab)
    ups, downs, rss, fs = [], [], [], []
    try:
        for _ in range(runs):
            t = time.perf_counter()
            cluster.up()
            ups.append(time.perf_counter() - t)
            rss.append(lab_pss_mib(lab))
            fs.append(lab_tmpfs_mib(lab))
            t = time.perf_counter()
            cluster.down()
            downs.append(time.perf_counter() - t)
    finally:
        cluster.down()
    name = f"{len(topo.mail_nodes)}+1 nodes, {len(topo.vips)} VIPs"
    for what, xs in (("up", ups), ("down", downs)):
        print(f"{name:28s} {what:5s} median {statistics.median(xs):6.2f} s  "
              f"min {min(xs):6.2f}  max {max(xs):6.2f}  ({runs} runs)")
    print(f"{name:28s} peak PSS of the lab's processes {max(rss):.0f} MiB, and its tmpfs "
          f"{max(fs):.0f} MiB: {max(r + f for r, f in zip(rss, fs, strict=True)):.0f} MiB", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rings", default="20,50", help="generated rings of N mail nodes, comma-separated "
                                                    "('' to skip)")
    p.add_argument("--ring-runs", type=int, default=1, help="runs of each generated ring")
    p.add_argument("--lab", default="bench")
    args = p.parse_args()
    print(f"machine: {machine()}", flush=True)
    bench(DEFAULT_TOPOLOGY, args.runs, args.lab)
    for n in [int(x) for x in args.rings.split(",") if x.strip()]:
        with tempfile.TemporaryDirectory() as tmp:
            bench(write_ring(n, Path(tmp) / "ring.yaml"), args.ring_runs, args.lab)


if __name__ == "__main__":
    main()
