"""Outage windows: how long a client saw a service fail, computed from a timeline's attempts.

A window is a maximal run of consecutive failed attempts against one target,
in invoke order. Its ``duration`` is the outage the client saw: from the last
success before the first failure to the first success after the last one,
both measured at invoke times (``Op.t``). When no attempt succeeded before the
window, it counts from the first failure instead. A window that never
recovered has no duration (``None``): the service did not come back while the
probe watched, which no bound can accept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailring.checks import CheckError
from mailring.client import Op


@dataclass(frozen=True)
class Window:
    target: str
    first_fail: float  # t of the first failed attempt
    last_fail: float  # t of the last failed attempt
    recovered: float | None  # t of the first success after the window; None: never
    last_ok: float | None  # t of the last success before the window; None: none
    attempts: int  # failed attempts in the window
    errors: tuple[str, ...] = ()  # distinct error texts, in order of first appearance

    @property
    def duration(self) -> float | None:
        """Seconds from the last success before (or the first failure) to the recovery."""
        if self.recovered is None:
            return None
        start = self.last_ok if self.last_ok is not None else self.first_fail
        return self.recovered - start

    def __str__(self) -> str:
        seen = f"{self.duration:.3f}s" if self.duration is not None else "never recovered"
        why = "; ".join(self.errors[:3]) or "no error text"
        return (f"{self.target}: {self.attempts} failed attempts from t={self.first_fail:.3f} "
                f"to t={self.last_fail:.3f}, outage {seen} ({why})")


def attempts_for(ops: Iterable[Op], target: str) -> list[Op]:
    """The target's attempts in invoke order."""
    return sorted((op for op in ops if op.target == target), key=lambda op: op.t)


def outage_windows(ops: Iterable[Op], target: str) -> list[Window]:
    """Every maximal run of consecutive failed attempts against ``target``."""
    windows: list[Window] = []
    last_ok: float | None = None
    run: list[Op] = []
    for op in attempts_for(ops, target):
        if not op.ok:
            run.append(op)
            continue
        if run:
            windows.append(_window(target, run, last_ok, recovered=op.t))
            run = []
        last_ok = op.t
    if run:
        windows.append(_window(target, run, last_ok, recovered=None))
    return windows


def _window(target: str, run: list[Op], last_ok: float | None, recovered: float | None) -> Window:
    errors = tuple(dict.fromkeys(op.error or "" for op in run if op.error))
    return Window(target=target, first_fail=run[0].t, last_fail=run[-1].t, recovered=recovered,
                  last_ok=last_ok, attempts=len(run), errors=errors)


def single_outage(ops: Iterable[Op], target: str) -> Window | None:
    """The one outage window of ``target``; None if it never failed; CheckError if it flapped."""
    windows = outage_windows(ops, target)
    if len(windows) > 1:
        listing = "\n  ".join(str(w) for w in windows)
        raise CheckError(f"{target}: expected at most one outage window, the client saw "
                         f"{len(windows)}:\n  {listing}")
    return windows[0] if windows else None


def require_samples(ops: Iterable[Op], target: str, minimum: int) -> list[Op]:
    """The target's attempts; CheckError when the probe made fewer than ``minimum``.

    A probe that saw nothing must fail the test, never pass on an empty history.
    """
    ops = list(ops)
    mine = attempts_for(ops, target)
    if len(mine) < minimum:
        known = sorted({op.target for op in ops}) or ["none"]
        raise CheckError(f"{target}: the probe made {len(mine)} attempts, at least {minimum} "
                         f"needed (targets with attempts: {', '.join(known)})")
    return mine
