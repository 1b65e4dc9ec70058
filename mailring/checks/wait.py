"""Wait on a condition with a deadline, and say what was last seen when it never held."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from mailring.checks import CheckError

T = TypeVar("T")


class NotYet(Exception):
    """The condition does not hold yet; the message says what was seen."""


def eventually(check: Callable[[], T], deadline_s: float, what: str, poll_s: float = 0.05) -> T:
    """Call ``check`` until it returns without raising NotYet/AssertionError; return its value.

    On timeout raise CheckError("<what> not reached after N s; last seen: ...").
    """
    last = ["nothing seen yet"]

    def attempt_once() -> T:
        try:
            return check()
        except (NotYet, AssertionError) as exc:
            last[0] = str(exc) or type(exc).__name__
            raise NotYet(last[0]) from None

    try:
        for attempt in Retrying(stop=stop_after_delay(deadline_s), wait=wait_fixed(poll_s),
                                retry=retry_if_exception_type(NotYet)):
            with attempt:
                return attempt_once()
    except RetryError:
        pass
    raise CheckError(f"{what} not reached after {deadline_s:g} s; last seen: {last[0]}")
