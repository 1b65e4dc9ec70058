"""The Hypothesis state machine: its rules are the fault registry, its invariants the model.

``machine_class(fuzz)`` builds a ``RuleBasedStateMachine`` subclass with two
rules per fault kind the driver supports (``mailring.faults.KINDS``): the
fault (``crash``, ``stop``, ``drain``, ...) and its inverse (``boot``,
``start``, ``ready``, ...), each with a precondition that some legal step of
it exists now (``FaultState.fault_moves`` / ``undo_moves``: no double crash,
heal only what is faulted), and the step itself drawn from those. After every
step the invariant ``model_holds`` checks the cluster against the model
(``mailring.fuzz.check``). The sequence's faults are healed in ``teardown``;
the mail written all through the sequence is judged there, once healed.

Each machine reports to the ``Fuzz`` session it was built for (I/O, budget,
records); once the session's time is up, new sequences and steps are
rejected (Hypothesis discards them), so a shrink stops within the budget too.
Shrinking re-runs many candidates; a step whose sequence so far is one a
checked sequence already took with every invariant holding is not run at
once (the model is deterministic): it runs, and is checked again, only when
the candidate goes past what is known, so a candidate that is a known
passing prefix costs the cluster nothing; one that repeats a failing
sequence fails again at once, from the record. The shrunk sequence is
reproduced on the cluster by replaying the scenario file written for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mailring import faults
from mailring.fuzz.moves import FaultState, Move

if TYPE_CHECKING:
    from mailring.fuzz.session import Fuzz


class InvariantBroken(AssertionError):
    """A step (or the sequence's mail) broke an invariant; the message has the figures."""


class FaultSequence(RuleBasedStateMachine):
    """One random fault sequence on the cluster of ``fuzz``."""

    fuzz: Fuzz

    def __init__(self) -> None:
        super().__init__()
        self.final = _is_final()
        self.fuzz.machines += 1
        self.first = self.fuzz.machines == 1
        if self.fuzz.out_of_time() and not self.final:
            reject()
        self.state = FaultState(self.fuzz.topology, self.fuzz.flavour, self.fuzz.kinds)
        self.moves: list[Move] = []  # the sequence so far
        self.deferred: list[Move] = []  # steps a passing sequence already took: not run (yet)
        self.pending: Any = None  # the step whose invariants are due
        self.broken = False
        self.sequence = 0  # the sequence's number once it touches the cluster

    def take(self, move: Move) -> None:
        if self.first and not self.final:
            reject()  # Hypothesis's first example is its simplest: crash mail01, boot mail01, ... again
        if self.fuzz.out_of_time() and not self.final:
            reject()
        known = self.fuzz.failing.get(tuple(self.moves + [move]))
        if known is not None and not self.sequence and not self.final:  # the same steps failed before
            self._broken(f"step {len(self.moves) + 1} ({move.text}): {known} (as before)")
        try:
            if not self.sequence and tuple(self.moves + [move]) in self.fuzz.passed:
                self.deferred.append(move)  # known to hold: run it only if the sequence goes further
            else:
                if not self.sequence:
                    self.sequence = self.fuzz.begin_sequence(self.final)
                for i, earlier in enumerate(self.deferred, 1):
                    self._run(earlier, self.state_after(i - 1), i)
                self.deferred = []
                self.pending = self.fuzz.take(self.sequence, len(self.moves) + 1, move, self.state)
            self.state.apply(move)
            self.moves.append(move)
        except BaseException:
            self.broken = True
            raise

    def state_after(self, n: int) -> FaultState:
        state = FaultState(self.fuzz.topology, self.fuzz.flavour, self.fuzz.kinds)
        for move in self.moves[:n]:
            state.apply(move)
        return state

    def _run(self, move: Move, before: FaultState, index: int) -> None:
        """A deferred step, run on the cluster and checked now that the sequence goes past it."""
        verdict = self.fuzz.take(self.sequence, index, move, before)
        self.pending = verdict
        after = FaultState(before.topo, before.flavour, before.kinds, dict(before.active))
        after.apply(move)
        self._check(after, self.moves[:index])

    @invariant()
    def model_holds(self) -> None:
        """Owners converge to the model in time, promised services answer, one holder per VIP,
        no node above the load promise (``mailring.fuzz.check``)."""
        if self.pending is not None:
            self._check(self.state, self.moves)

    def _check(self, state: FaultState, moves: list[Move]) -> None:
        pending, self.pending = self.pending, None
        try:
            verdict = self.fuzz.check(pending, state)
        except BaseException:
            self.broken = True
            raise
        if verdict.ok:
            self.fuzz.passed.add(tuple(moves))
            return
        self.broken = True
        self.fuzz.failing[tuple(moves)] = f"{verdict.check}: {verdict.message}"
        self.fuzz.failed(self.sequence, list(moves), verdict.check, verdict.message, verdict.figures)
        self._broken(f"step {verdict.index} ({verdict.move.text}): {verdict.check}: {verdict.message}")

    def teardown(self) -> None:
        if not self.sequence:  # every step was one a passing sequence took: nothing ran
            return
        problem = self.fuzz.end_sequence(self.sequence, judge_mail=not self.broken)
        if problem is not None:
            check, message, figures = problem
            self.fuzz.failed(self.sequence, list(self.moves), check, message, figures)
            self._broken(f"after the sequence: {check}: {message}")

    def _broken(self, message: str) -> None:
        """The one place a broken invariant is raised: Hypothesis tells failures apart by where they
        are raised, and a step that fails again from the record must count as the same failure."""
        self.broken = True
        raise InvariantBroken(message)


def _is_final() -> bool:
    """Is this Hypothesis's last replay of the minimal failing sequence? (it always runs)"""
    try:
        return bool(current_build_context().is_final)
    except Exception:  # noqa: BLE001 - outside a Hypothesis run
        return False


def _fault_rule(kind: str):
    def inflict(self: FaultSequence, data: st.DataObject) -> None:
        self.take(data.draw(st.sampled_from(self.state.fault_moves(kind)), label=kind))

    inflict.__name__ = inflict.__qualname__ = kind
    return precondition(lambda self: bool(self.state.fault_moves(kind)))(rule(data=st.data())(inflict))


def _undo_rule(kind: str, name: str):
    def undo(self: FaultSequence, data: st.DataObject) -> None:
        self.take(data.draw(st.sampled_from(self.state.undo_moves(kind)), label=name))

    undo.__name__ = undo.__qualname__ = name
    return precondition(lambda self: bool(self.state.undo_moves(kind)))(rule(data=st.data())(undo))


def machine_class(fuzz: Fuzz) -> type[FaultSequence]:
    """A FaultSequence subclass bound to ``fuzz`` with a fault rule and an inverse rule per kind."""
    attrs: dict[str, Any] = {"fuzz": fuzz}
    inverses = [k.inverse for k in faults.KINDS.values()]
    for k in faults.KINDS.values():
        if k.name not in fuzz.kinds:
            continue
        attrs[k.name] = _fault_rule(k.name)
        name = k.inverse if inverses.count(k.inverse) == 1 else f"{k.inverse}_{k.name}"
        attrs[name] = _undo_rule(k.name, name)
    return type("FaultSequence", (FaultSequence,), attrs)
