"""Wait on a running probe timeline: until it samples every target, or until they answer again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks import NotYet
from mailring.checks.timelines import not_recovered, short_of
from mailring.polling.wait import eventually

if TYPE_CHECKING:
    from mailring.client import Timeline


def wait_sampling(tl: Timeline, names: list[str], minimum: int = 3, deadline_s: float = 15) -> None:
    """Block until every target has `minimum` successful attempts (the probe is running)."""

    def check() -> None:
        short = short_of(tl.so_far(), names, minimum)
        if short:
            raise NotYet(f"targets without {minimum} ok samples yet: {short}")

    eventually(check, deadline_s, "probe timeline sampling every target")


def wait_recovered(tl: Timeline, names: list[str], since: float, deadline_s: float,
                   must_fail: bool = True) -> None:
    """Block until every target answers again after `since` (having failed, if must_fail)."""

    def check() -> None:
        pending = not_recovered(tl.so_far(), names, since, must_fail)
        if pending:
            raise NotYet("; ".join(pending))

    eventually(check, deadline_s, "every watched service answering again")
