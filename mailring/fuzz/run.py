"""A fuzz run: Hypothesis drives fault sequences on a running cluster; a failure is shrunk and
written as a scenario file.

``fuzz(cluster, folder, options)`` samples VIP holders all through the run
(``checks.holders.HolderWatch``, into ownership.jsonl), lets Hypothesis
generate ``options.examples`` sequences of up to ``options.steps`` steps from
``options.seed``, checks every step (``mailring.fuzz.check``) and, with the
mail writer on, every sequence's mail once healed. On a failure Hypothesis
shrinks the sequence (every candidate is run on the cluster, within the
budget); the shortest failing sequence seen is written as a scenario file
(``mailring.fuzz.write``) beside verdict.json (one row per step, with its
verdict and figures), faults.jsonl and report.html. Every fault is healed and
the cluster brought back to the model at the end of each sequence and of the
run, also on Ctrl-C.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.errors import HypothesisException
from hypothesis.stateful import run_state_machine_as_test

from mailring import faults
from mailring.checks import CheckError
from mailring.checks.holders import Handover, handovers
from mailring.client import Client
from mailring.fuzz.check import StepVerdict, check_step
from mailring.fuzz.machine import InvariantBroken, machine_class
from mailring.fuzz.moves import FaultState, Move
from mailring.fuzz.write import n_steps, write_scenario
from mailring.mailflow import FlowWriter, check_flow
from mailring.nemesis import Fault, Nemesis
from mailring.polling.convergence import converge
from mailring.polling.haproxy import servers_settled
from mailring.polling.holders import HolderWatch
from mailring.runs.records import collect_logs, record_fault, record_ownership
from mailring.runs.report import write_report
from mailring.runs.verdict import Result, write_verdict
from mailring.scenario.progress import Progress

if TYPE_CHECKING:
    from mailring.cluster import Cluster
    from mailring.runs import RunFolder

SAMPLE_PERIOD_S = 0.2
MAIL_RATE = 5  # messages a second, to every VIP in turn, all through a sequence
SETTLE_S = 60.0  # after a sequence is healed: every HAProxy sees every server UP again


@dataclass(frozen=True)
class Options:
    steps: int = 20  # most steps in one sequence
    seed: int = 0
    budget_s: float = 900.0  # the whole run, shrinking included
    examples: int = 1  # sequences Hypothesis generates (before shrinking)
    mail: bool = True  # a mail writer through every sequence, judged once healed
    kinds: tuple[str, ...] | None = None  # fault kinds to use (default: every one the driver supports)


@dataclass
class Failure:
    sequence: int
    moves: list[Move]
    check: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


class Fuzz:
    """The I/O side of a fuzz run, shared by every sequence Hypothesis runs."""

    def __init__(self, cluster: Cluster, folder: RunFolder, options: Options,
                 progress: Progress | None = None) -> None:
        self.cluster, self.folder, self.options = cluster, folder, options
        self.topology, self.flavour = cluster.topology, cluster.FLAVOUR
        self.kinds = tuple(k for k in faults.KINDS if cluster.supports(k)
                           and (options.kinds is None or k in options.kinds))
        self.progress = progress or Progress(plain=True)
        self.client = Client(cluster)
        self.nemesis = Nemesis(cluster)
        self.watch = HolderWatch(cluster, SAMPLE_PERIOD_S,
                                 record=lambda status, t: record_ownership(folder, status, t))
        self.deadline = time.time() + options.budget_s
        self.sequences = 0  # sequences run on the cluster
        self.machines = 0  # sequences Hypothesis began (some never touch the cluster)
        self.steps_taken = 0
        self.verdicts: list[StepVerdict] = []
        self.failures: list[Failure] = []
        self.active: dict[str, tuple[Fault, str]] = {}  # scenario target -> (fault, step text)
        self.allowed: list[Handover] = []
        self.checked_until = 0.0
        self.writer: FlowWriter | None = None
        self.mail_checked = 0
        self.restarts = 0  # times the cluster had to be restarted to get back to the model
        self.passed: set[tuple[Move, ...]] = set()  # step sequences whose every step held
        self.failing: dict[tuple[Move, ...], str] = {}  # step sequences whose last step failed -> why

    def out_of_time(self) -> bool:
        return time.time() >= self.deadline

    # -- a sequence ------------------------------------------------------------
    def begin_sequence(self, final: bool) -> int:
        self.sequences += 1
        n = self.sequences
        self.progress.note(f"sequence {n}{' (the shrunk one, replayed)' if final else ''}: "
                           f"{self.budget_left():.0f} s of budget left")
        self.allowed, self.checked_until = [], time.time()
        if self.options.mail:
            left = max(self.deadline - time.time(), 0) + 600
            self.writer = FlowWriter(self.client, hosts=[str(v.address) for v in self.topology.vips],
                                     rate=MAIL_RATE, count=int(MAIL_RATE * left), max_seconds=left)
        return n

    def budget_left(self) -> float:
        return max(self.deadline - time.time(), 0.0)

    def take(self, sequence: int, index: int, move: Move, state: FaultState) -> StepVerdict:
        """Apply one step (a fault, or the inverse of an active one) to the cluster and record it;
        ``state`` is the model before the step."""
        self.steps_taken += 1
        self.progress.status(f"sequence {sequence} step {index}: {move.text}")
        t = time.time()
        if move.undoes:
            fault, text = self.active.pop(move.target)
            self.nemesis.heal(fault)
            record_fault(self.folder, "heal", text, move.target, t=t, step=index, sequence=sequence,
                         done=time.time(), by=move.text)
        else:
            fault = Fault(move.kind, move.node, move.objects)
            self.active[move.target] = (fault, move.text)
            self.nemesis.apply(fault)
            record_fault(self.folder, "invoke", move.text, move.target, t=t, step=index,
                         sequence=sequence, done=time.time())
        done = time.time()
        after = FaultState(self.topology, self.flavour, self.kinds, dict(state.active))
        after.apply(move)
        self.allowed += handovers(self.topology, t, state.failed(), after.failed(), done=done)
        return StepVerdict(sequence, index, move, t=t, figures={"action_ms": round((done - t) * 1000)})

    def check(self, verdict: StepVerdict, state: FaultState) -> StepVerdict:
        """The step's invariants (``state``: the model after it); doubles since the last check."""
        done = verdict.t + verdict.figures["action_ms"] / 1000
        check_step(verdict, state, self.watch, self.client, done, self.allowed, self.checked_until)
        self.checked_until = time.time()
        verdict.duration_s = self.checked_until - verdict.t
        self.verdicts.append(verdict)
        word = "ok" if verdict.ok else f"FAILED {verdict.check}: {verdict.message[:200]}"
        self.progress.note(f"  #{verdict.sequence}.{verdict.index} {verdict.move.text}: {word} "
                           f"({verdict.duration_s:.1f} s)")
        return verdict

    def end_sequence(self, sequence: int, judge_mail: bool) -> tuple[str, str, dict[str, Any]] | None:
        """Heal the sequence's faults, judge its mail, restore the model. The problem, if any."""
        writer, self.writer = self.writer, None
        attempts = writer.stop() if writer is not None else None
        self.heal("end of sequence")
        problem = None
        if writer is not None and attempts is not None and judge_mail:
            self.progress.status(f"sequence {sequence}: mail: waiting for every queue to drain")
            verdict = check_flow(self.cluster, self.client, attempts, writer.prefix)
            self.mail_checked += 1
            figures = verdict.counts()
            self.progress.note(f"  #{sequence} mail: {figures}")
            if verdict.accepted() == 0:
                problem = "no_mail_lost", "the writer got no message accepted: nothing was checked", figures
            elif not verdict.valid:
                problem = "no_mail_lost", "; ".join(verdict.explain().splitlines()[:3]), figures
        self.restore("end of sequence")
        return problem

    def heal(self, why: str) -> list[str]:
        """Heal every active fault, newest first; the errors."""
        t = time.time()
        errors = self.nemesis.heal_all()
        for target, (_, text) in self.active.items():
            record_fault(self.folder, "heal", text, target, t=t, done=time.time(), by=why)
        self.active.clear()
        self.allowed = []
        return errors

    def restore(self, why: str) -> None:
        """Wait until the cluster matches the model with no fault. A cluster that does not get there
        by itself once healed (no preemption) is restarted (down, up), so the next sequence starts
        from the model; every HAProxy then sees every server UP."""
        self.progress.status(f"{why}: waiting until the cluster matches the model again")
        try:
            converge(self.cluster, failed=set())
        except CheckError as exc:
            self.progress.note(f"{why}: healed, but the cluster does not return to the model by itself; "
                               f"restarting lab {self.cluster.lab} ({str(exc)[:200]})")
            self.restarts += 1
            self.cluster.down()
            self.cluster.up()
            converge(self.cluster, failed=set())
        servers_settled(self.cluster, SETTLE_S)
        self.checked_until = time.time()

    def failed(self, sequence: int, moves: list[Move], check: str, message: str,
               figures: dict[str, Any]) -> None:
        self.failures.append(Failure(sequence, moves, check, message, dict(figures)))

    # -- the run ---------------------------------------------------------------
    def shortest(self) -> Failure | None:
        return min(self.failures, key=lambda f: (len(f.moves), -f.sequence), default=None)


def hypothesis_settings(options: Options) -> settings:
    return settings(max_examples=options.examples, stateful_step_count=options.steps, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck), derandomize=False,
                    phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False,
                    verbosity=Verbosity.quiet, print_blob=False)


def fuzz(cluster: Cluster, folder: RunFolder, options: Options, progress: Progress | None = None,
         replay: str = "mailring scenario") -> dict[str, Any]:
    """Run the fuzzer; return the verdict (also in the folder), with ``scenario`` set to the written
    file when an invariant failed. Every fault is healed in ``finally``."""
    run = Fuzz(cluster, folder, options, progress)
    folder.update_meta(seed=options.seed, steps=options.steps, budget_s=options.budget_s,
                       examples=options.examples, topology=cluster.topology.path, driver=cluster.NAME,
                       lab=cluster.lab, kinds=list(run.kinds),
                       description=f"mailring fuzz: up to {options.examples} random fault sequences of up "
                                   f"to {options.steps} steps from seed {options.seed}, every step checked "
                                   "against the ownership model")
    error: str | None = None
    stopped: BaseException | None = None
    run.restore("before the first step")
    run.watch.start()
    try:
        cls = seed(options.seed)(machine_class(run))
        try:
            run_state_machine_as_test(cls, settings=hypothesis_settings(options))
        except InvariantBroken:
            pass  # recorded in run.failures; the shortest one is written below
        except HypothesisException as exc:  # a flaky replay, everything rejected, ...
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    except BaseException as exc:
        stopped = exc
        raise
    finally:
        try:
            if run.writer is not None:
                run.writer.stop()
            errors = run.heal("end of run")
            if errors:
                run.progress.note("could not heal: " + "; ".join(errors))
            run.restore("end of run")
        finally:
            run.watch.stop()
            folder.update_meta(end=time.time())
            collect_logs(folder, cluster)
            if stopped is not None:
                _write(run, folder, None, f"the run stopped: {type(stopped).__name__}: {stopped}", replay)
    return _write(run, folder, run.shortest(), error, replay)


def _write(run: Fuzz, folder: RunFolder, failure: Failure | None, error: str | None,
           replay: str) -> dict[str, Any]:
    results = [Result("step", v.ok, v.message or "every invariant held", v.index,
                      f"#{v.sequence} {v.move.text}", figures={"check": v.check or "all", **v.figures},
                      duration_s=v.duration_s) for v in run.verdicts]
    extra: dict[str, Any] = {"seed": run.options.seed, "sequences": run.sequences, "steps": run.steps_taken,
                             "restarts": run.restarts}
    if failure is not None:
        path = write_scenario(folder.path, run.topology, failure, run.options, run.flavour)
        command = f"{replay} {path}"
        extra.update(scenario=str(path), replay=command)
        results.append(Result("fuzz", False, f"shrunk to {n_steps(len(failure.moves))}: "
                              + ", ".join(m.text for m in failure.moves) + f"; {failure.check}: "
                              f"{failure.message}; replay: {command}",
                              figures={"steps": len(failure.moves), "check": failure.check}))
    elif error is not None or not run.verdicts:
        results.append(Result("fuzz", "unknown", error or "no step was taken within the budget"))
    else:
        results.append(Result("fuzz", True, f"{run.sequences} sequences, {run.steps_taken} steps, "
                              f"mail judged after {run.mail_checked}: every invariant held"))
    verdict = write_verdict(folder, results, folder.meta().get("name", "fuzz"), **extra)
    write_report(folder)
    return verdict

