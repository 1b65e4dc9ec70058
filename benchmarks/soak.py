"""Soak: run the lab suite N times and name every flaky test with its failure message.

Each run is `scripts/test.sh lab --lab LAB [PYTEST ARGS]` (a fresh lab each
time); its JUnit XML (runs/junit-lab.xml) is kept as runs/soak-<stamp>/run-NN.xml
and read back. At the end it prints the runs that passed and failed, and per
test that failed at least once: failed in k of N runs, flaky (it also passed)
or failing (it never passed), and the first failure message. Figures, not
assertions. Bounded: at most --runs runs (default 20), no run started when
the last one's time would pass --max-minutes, and each run stopped (SIGTERM,
which tears its lab down, then SIGKILL) after --run-timeout minutes.

As root, under the heavy lock:
    .venv/bin/python benchmarks/soak.py --runs 20
    .venv/bin/python benchmarks/soak.py --runs 5 --max-minutes 28 -- \
        --ignore=tests/cluster/test_client_address.py --ignore=tests/cluster/test_local_service.py

scripts/test.sh always runs tests/cluster, so a part of the suite is chosen with
pytest's -k, -m or --ignore=FILE, not by naming files.

Exit 0 when every run passed, 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JUNIT = REPO / "runs" / "junit-lab.xml"
KILL_GRACE_S = 60  # after SIGTERM, time for the session to heal and take its lab down


@dataclass
class Run:
    index: int
    seconds: float
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # test id -> first line of its message
    passed: set[str] = field(default_factory=set)
    note: str = ""

    @property
    def green(self) -> bool:
        return self.exit_code == 0 and not self.failed


def read_junit(path: Path) -> tuple[dict[str, int], dict[str, str], set[str]]:
    """(counts, failed test -> message, passed tests) from one pytest JUnit XML file."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed: dict[str, str] = {}
    passed: set[str] = set()
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            text = bad.get("message") or (bad.text or "").strip() or bad.tag
            failed[test] = f"{bad.tag}: {' '.join(text.split())[:300]}"
            counts["failed"] += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            passed.add(test)
            counts["passed"] += 1
    return counts, failed, passed


def run_once(index: int, lab: str, pytest_args: list[str], timeout_s: float, keep: Path) -> Run:
    JUNIT.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = subprocess.Popen([str(REPO / "scripts" / "test.sh"), "lab", "--lab", lab, "-q",
                             "-p", "no:cacheprovider", *pytest_args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    note = ""
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        note = f"stopped after {timeout_s / 60:.0f} min"
        os.killpg(proc.pid, signal.SIGTERM)  # the session heals its faults and takes its lab down
        try:
            out, _ = proc.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            note += "; killed (the next run's `up` removes what it left)"
    seconds = time.monotonic() - t0
    run = Run(index, seconds, proc.returncode, note=note)
    (keep / f"run-{index:02d}.log").write_text(out)
    if JUNIT.exists():
        shutil.copyfile(JUNIT, keep / f"run-{index:02d}.xml")
        run.counts, run.failed, run.passed = read_junit(JUNIT)
    else:
        last = (out.strip().splitlines() or ["(no output)"])[-1]
        run.failed["(session)"] = f"no JUnit XML written; last line: {last[:300]}"
    return run


def summary(runs: list[Run]) -> list[str]:
    """The report: one line per run, the totals, then every test that ever failed."""
    lines = []
    for r in runs:
        c = r.counts
        lines.append(f"run {r.index:2d}: {r.seconds:6.1f} s  exit {r.exit_code}  "
                     f"{c.get('passed', 0)} passed, {c.get('failed', 0)} failed, {c.get('skipped', 0)} "
                     f"skipped" + (f"  ({r.note})" if r.note else ""))
    green = sum(r.green for r in runs)
    lines.append(f"soak: {len(runs)} runs, {green} passed, {len(runs) - green} failed")
    tests = sorted({t for r in runs for t in r.failed})
    flaky, failing = [], []
    for test in tests:
        failed_in = [r for r in runs if test in r.failed]
        passed_in = [r for r in runs if test in r.passed]
        first = failed_in[0]
        line = (f"  {test}: failed in {len(failed_in)} of {len(runs)} runs (first: run {first.index}): "
                f"{first.failed[test]}")
        (flaky if passed_in else failing).append(line)
    lines.append(f"flaky tests (failed in some runs, passed in others): {len(flaky)}")
    lines.extend(flaky)
    lines.append(f"failing tests (never passed): {len(failing)}")
    lines.extend(failing)
    return lines


def _args(argv: Iterable[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--max-minutes", type=float, default=240.0,
                   help="start no run that would end after this (default 240)")
    p.add_argument("--run-timeout", type=float, default=30.0, help="minutes one run may take (default 30)")
    p.add_argument("--lab", default="soak", help="lab name of the runs (default soak)")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST ARGS",
                   help="passed to pytest after tests/cluster: -k, -m, --ignore=FILE "
                        "(default: the whole lab suite)")
    args = p.parse_args(list(argv) if argv is not None else None)
    if not 1 <= args.runs <= 1000 or args.max_minutes <= 0 or args.run_timeout <= 0:
        p.error("--runs 1..1000, --max-minutes and --run-timeout above 0")
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = _args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    keep = REPO / "runs" / f"soak-{stamp}"
    keep.mkdir(parents=True)
    what = "tests/cluster " + (" ".join(args.pytest_args) or "(the whole lab suite)")
    print(f"soak: up to {args.runs} runs of {what}, at most {args.max_minutes:g} min; "
          f"JUnit and output in {keep}", flush=True)
    start = time.monotonic()
    runs: list[Run] = []
    for i in range(1, args.runs + 1):
        left = args.max_minutes * 60 - (time.monotonic() - start)
        longest = max((r.seconds for r in runs), default=0.0)
        if runs and longest > left:
            print(f"soak: stopping after {len(runs)} runs: another could take {longest:.0f} s, "
                  f"{max(left, 0):.0f} s left of --max-minutes", flush=True)
            break
        run = run_once(i, args.lab, args.pytest_args, min(args.run_timeout * 60, max(left, 60)), keep)
        runs.append(run)
        print(summary([run])[0], flush=True)
    report = summary(runs)
    (keep / "summary.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report[len(runs):]))
    return 0 if all(r.green for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
