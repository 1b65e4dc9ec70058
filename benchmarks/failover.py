"""Benchmark: the destructive suite on the lab, and the outages it measured.

Runs `pytest tests/cluster -m destructive` RUNS times (each a fresh lab), and
prints each run's wall time and result, then the failover figures from the
runs' outages.json: crash failover outage / CARP bound (median, max) and
failback outages. Figures, not assertions. As root:
`.venv/bin/python benchmarks/failover.py [--runs 5]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--lab", default="bench")
    args = p.parse_args()
    walls, ratios, failbacks, results = [], [], [], []
    for i in range(args.runs):
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "pytest", "tests/cluster", "-m", "destructive", "-q",
                              "-p", "no:cacheprovider", "--lab", args.lab], cwd=REPO,
                             capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        summary = (res.stdout.strip().splitlines() or ["(no output)"])[-1]
        results.append(res.returncode)
        print(f"run {i + 1}: {walls[-1]:6.1f} s  exit {res.returncode}  {summary}", flush=True)
        latest = REPO / "runs" / "latest" / "outages.json"
        if latest.exists():
            for row in json.loads(latest.read_text()):
                if row["outage_ms"] is None:
                    continue
                if row["fault"].startswith("crash"):
                    ratios.append(row["outage_ms"] / row["bound_ms"])
                elif row["fault"].startswith("boot"):
                    failbacks.append(row["outage_ms"])
    print(f"destructive suite: median {statistics.median(walls):.1f} s, max {max(walls):.1f} s over "
          f"{args.runs} runs; {results.count(0)}/{args.runs} green")
    if ratios:
        print(f"crash failover outage / CARP bound: median {statistics.median(ratios):.2f}, "
              f"min {min(ratios):.2f}, max {max(ratios):.2f} ({len(ratios)} service x VIP samples)")
    if failbacks:
        print(f"failback outage: median {statistics.median(failbacks):.0f} ms, max {max(failbacks):.0f} ms")


if __name__ == "__main__":
    main()
