"""`mailring scenario FILE...` and `mailring report RUN_DIR`: outage scenarios and their run folders.

`scenario` checks every file first (a broken one: one line, exit 2, nothing
started; so is a lab of the same name that runs another topology: it is never
reused), then runs each: it brings the cluster up if it is not, runs the
steps, heals every fault and, if it brought the cluster up, takes it down
again, also on Ctrl-C. Exit 0 when every expectation held, 1 when one failed
(the line names the step, service, VIP and figures), 2 when a run could not
be carried out.
"""

from __future__ import annotations

import argparse
import sys

from mailring.cli.common import add_common
from mailring.cluster import Cluster, open_cluster
from mailring.errors import InputError
from mailring.inputfile import pinned
from mailring.runs import RunFolder
from mailring.runs.report import write_report
from mailring.runs.store import VERDICT
from mailring.runs.verdict import first_failure


def lab_of(scenario, args: argparse.Namespace) -> Cluster:
    """The scenario's lab; InputError if a lab of that name runs another topology."""
    from mailring.scenario.run import check_same_topology, lab_for

    cluster = open_cluster(scenario.topology, driver=args.driver, lab=lab_for(args.lab, scenario))
    check_same_topology(cluster)
    return cluster


def run_one(scenario, args: argparse.Namespace, progress) -> dict:
    """Run one loaded scenario on its lab (brought up first if it is not); its verdict and folder."""
    from mailring.scenario.progress import bring_up
    from mailring.scenario.run import is_up, run

    cluster = lab_of(scenario, args)
    brought_up = False
    if not is_up(cluster):
        nodes = len(scenario.topology.nodes)
        progress.status(f"bringing lab {cluster.lab} up ({args.driver}, {nodes} nodes)")
        brought_up = True
        bring_up(cluster, progress)
        progress.note(f"lab {cluster.lab} is up")
    try:
        folder = RunFolder.create(scenario.name, driver=args.driver, lab=cluster.lab)
        progress.note(f"scenario {scenario.name}: {len(scenario.steps)} steps, "
                      f"{len(scenario.probes)} probe targets at {scenario.hz:g} Hz; run folder {folder}")
        return {**run(scenario, cluster, folder, progress), "folder": str(folder)}
    finally:
        if brought_up and not args.keep_cluster:
            progress.status(f"taking lab {cluster.lab} down (this run brought it up)")
            cluster.down()


def cmd_scenario(args: argparse.Namespace) -> int:
    from mailring.scenario import validate
    from mailring.scenario.progress import Progress

    # each run repoints runs/latest: a file named through it is the one it names now
    files, topology = [pinned(f) for f in args.files], pinned(args.topology)
    scenarios = []
    for file in files:  # every file checked before anything starts
        scenario, errors = validate(file, topology)
        if errors:
            raise InputError(errors[0])
        scenarios.append(scenario)
    for scenario in scenarios:  # nor is a lab of another topology reused (checked again at its turn)
        lab_of(scenario, args)
    worst = 0
    with Progress() as progress:
        for scenario in scenarios:
            try:
                verdict = run_one(scenario, args, progress)
            except (AssertionError, RuntimeError, TimeoutError) as exc:  # could not be carried out
                print(f"ERROR {scenario.name}: {exc}")
                worst = 2
                continue
            if verdict["valid"] is True:
                print(f"PASS {scenario.name}: {verdict['checked']} checks held; "
                      f"{verdict['folder']}/report.html")
            else:
                worst = max(worst, 1 if verdict["valid"] is False else 2)
                word = "FAIL" if verdict["valid"] is False else "UNKNOWN"
                print(f"{word} {scenario.name}: {first_failure(verdict)}; {verdict['folder']}/verdict.json")
            sys.stdout.flush()
    return worst


def cmd_report(args: argparse.Namespace) -> int:
    folder = RunFolder(args.run_dir)
    if not (folder.path / "meta.json").exists():
        raise InputError(f"{args.run_dir}: not a run folder (no meta.json); name a folder under runs/, "
                         "e.g. runs/latest")
    path = write_report(folder)
    valid = (folder.read_json(VERDICT) or {}).get("valid", "no verdict")
    print(f"{path} (verdict: {valid})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenario", help="run outage scenario files (fixtures/scenarios/*.yaml)")
    add_common(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario files, run in order")
    p.add_argument("--keep-cluster", action="store_true",
                   help="leave a cluster this command brought up running (to look at it)")
    p.set_defaults(func=cmd_scenario)
    p = sub.add_parser("report", help="draw RUN_DIR/report.html again from the run folder")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=cmd_report)
