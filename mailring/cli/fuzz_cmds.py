"""`mailring fuzz`: random fault sequences checked step by step against the ownership model.

Brings the cluster up if it is not (and down again at the end unless
``--keep-cluster``), runs the fuzzer (``mailring.fuzz.run``) into a run folder
(``runs/latest``) and prints the verdict. Exit 0 when every invariant held, 1
when one failed (the shrunk sequence is written as a scenario file in the run
folder and the command that replays it is printed), 2 on bad input or when
the run could not be carried out. Every fault is healed at the end, also on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import shlex

from mailring.cli.common import add_common, cluster_of
from mailring.cluster import DEFAULT_DRIVER, DEFAULT_LAB
from mailring.errors import InputError
from mailring.runs import RunFolder
from mailring.runs.verdict import first_failure
from mailring.scenario.schema import parse_duration
from mailring.topology import DEFAULT_TOPOLOGY


def positive(what: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"--{what}: expected a whole number of at least 1, got {value!r}; fix the value")
    return n


def replay_command(args: argparse.Namespace) -> str:
    """``mailring scenario`` with the options that point it at the same cluster."""
    words = ["mailring", "scenario"]
    if args.topology != str(DEFAULT_TOPOLOGY):
        words += ["--topology", args.topology]
    if args.lab != DEFAULT_LAB:
        words += ["--lab", args.lab]
    if args.driver != DEFAULT_DRIVER:
        words += ["--driver", args.driver]
    return shlex.join(words)


def cmd_fuzz(args: argparse.Namespace) -> int:
    from mailring.fuzz.run import Options, fuzz
    from mailring.scenario.progress import Progress
    from mailring.scenario.run import check_same_topology, is_up

    steps = positive("steps", args.steps)
    examples = positive("examples", args.examples)
    try:
        seed = int(args.seed)
    except ValueError:
        raise InputError(f"--seed: expected a whole number, got {args.seed!r}; fix the value") from None
    try:
        budget = parse_duration(args.budget)
    except ValueError as exc:
        raise InputError(f"--budget: {exc}; fix the value") from None
    cluster = cluster_of(args)  # a bad topology, driver or lab name: exit 2 before anything starts
    check_same_topology(cluster)  # nor is a lab brought up from another topology reused
    options = Options(steps=steps, seed=seed, budget_s=budget, examples=examples, mail=not args.no_mail)
    with Progress() as progress:
        brought_up = False
        if not is_up(cluster):
            progress.status(f"bringing lab {cluster.lab} up ({args.driver})")
            brought_up = True
            cluster.up()
        try:
            folder = RunFolder.create(f"fuzz-seed{seed}", driver=args.driver, lab=cluster.lab)
            progress.note(f"fuzz: seed {seed}, up to {examples} sequences of up to {steps} steps, budget "
                          f"{budget:g} s; run folder {folder}")
            try:
                verdict = fuzz(cluster, folder, options, progress, replay=replay_command(args))
            except (AssertionError, RuntimeError, OSError) as exc:  # could not be carried out
                print(f"ERROR fuzz seed {seed}: {exc}; {folder}/verdict.json")
                return 2
        finally:
            if brought_up and not args.keep_cluster:
                progress.status(f"taking lab {cluster.lab} down (this run brought it up)")
                cluster.down()
    where = f"{folder}/report.html"
    if verdict["valid"] is True:
        print(f"PASS fuzz seed {seed}: {verdict['sequences']} sequences, {verdict['steps']} steps, every "
              f"invariant held; {where}")
        return 0
    if verdict["valid"] is False:
        print(f"FAIL fuzz seed {seed}: {verdict['results'][-1]['message']}")
        print(f"shrunk scenario: {verdict['scenario']}")
        print(f"replay: {verdict['replay']}")
        return 1
    print(f"UNKNOWN fuzz seed {seed}: {first_failure(verdict)}; {where}")
    return 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuzz", help="random fault sequences checked against the ownership model, "
                                    "a failure shrunk to a scenario file")
    add_common(p)
    p.add_argument("--steps", default="20", help="most steps in one fault sequence (default 20)")
    p.add_argument("--seed", default="0",
                   help="Hypothesis seed: the same seed, the same sequences (default 0)")
    p.add_argument("--budget", default="15m",
                   help="time for the whole run, shrinking included, e.g. 10m or 90s (default 15m)")
    p.add_argument("--examples", default="1",
                   help="fault sequences to generate before giving up on finding a failure (default 1)")
    p.add_argument("--no-mail", action="store_true",
                   help="no mail writer through the sequences (no no_mail_lost check)")
    p.add_argument("--keep-cluster", action="store_true",
                   help="leave a cluster this command brought up running (to look at it)")
    p.set_defaults(func=cmd_fuzz)
