"""One fuzz run's side on the cluster (``Fuzz``), shared by every sequence Hypothesis runs.

It applies and heals each step's fault (``mailring.nemesis``) and records it,
checks the step's invariants (``mailring.fuzz.check``), runs the mail writer
through a sequence and judges its mail once healed, and brings the cluster
back to the model between sequences (restarting a lab that does not return
by itself). ``machine`` drives it step by step; ``run`` makes it and writes
what it found.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mailring import faults
from mailring.checks import CheckError
from mailring.checks.holders import Handover, handovers
from mailring.client import Client, ProbeError
from mailring.fuzz.check import StepVerdict, check_step
from mailring.fuzz.moves import FaultState, Move
from mailring.fuzz.spec import Failure, Options
from mailring.mailflow import FlowWriter, check_flow
from mailring.nemesis import Fault, Nemesis
from mailring.polling.convergence import converge
from mailring.polling.haproxy import servers_settled
from mailring.polling.holders import HolderWatch
from mailring.runs.records import record_fault, record_ownership
from mailring.scenario.progress import Progress

if TYPE_CHECKING:
    from mailring.cluster import Cluster
    from mailring.runs import RunFolder

SAMPLE_PERIOD_S = 0.2
MAIL_RATE = 5  # messages a second, to every VIP in turn, all through a sequence
SETTLE_S = 60.0  # after a sequence is healed: every HAProxy sees every server UP again


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
        self.allowed += handovers(self.topology, t, state.failed(), after.failed(), done=done,
                                  late_s=self.cluster.GUEST_LATE_S)
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
            try:
                verdict = check_flow(self.cluster, self.client, attempts, writer.prefix)
            except (CheckError, ProbeError) as exc:
                # the mail could not be judged (a queue or the mailboxes unreadable): the sequence's
                # failure, recorded like any other so the run names it, and the cluster restored below
                problem = "no_mail_lost", f"the mail could not be judged: {exc}", {}
                self.progress.note(f"  #{sequence} mail: {problem[1]}")
            else:
                self.mail_checked += 1
                figures = verdict.counts()
                self.progress.note(f"  #{sequence} mail: {figures}")
                if verdict.accepted() == 0:
                    problem = ("no_mail_lost", "the writer got no message accepted: nothing was checked",
                               figures)
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
