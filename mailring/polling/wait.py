"""Wait on a condition with a deadline, and say what was last seen when it never held.

Two shapes of waiting, kept apart on purpose:

* ``eventually``: a state the cluster is moving towards (a VIP taken over, a
  log line written). The check raises ``NotYet`` while it cannot tell yet; a
  plain ``AssertionError`` is a verdict and fails at once, never retried.
* ``steadily``: a state the cluster must already be in (every server L7OK).
  It must hold on ``reads`` reads in a row; a read that cannot judge (``NotYet``,
  e.g. a health check in flight) is read again, any failing read fails. One good
  read out of many is not a steady state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from mailring.checks import CheckError, NotYet

T = TypeVar("T")


def eventually(check: Callable[[], T], deadline_s: float, what: str, poll_s: float = 0.05) -> T:
    """Call ``check`` until it returns without raising NotYet; return its value.

    An AssertionError from ``check`` propagates at once (a verdict, not a "not yet").
    On timeout raise CheckError("<what> not reached after N s; last seen: ...").
    """
    last = ["nothing seen yet"]

    def attempt_once() -> T:
        try:
            return check()
        except NotYet as exc:
            last[0] = str(exc) or type(exc).__name__
            raise

    try:
        for attempt in Retrying(stop=stop_after_delay(deadline_s), wait=wait_fixed(poll_s),
                                retry=retry_if_exception_type(NotYet)):
            with attempt:
                return attempt_once()
    except RetryError:
        pass
    raise CheckError(f"{what} not reached after {deadline_s:g} s; last seen: {last[0]}")


def steadily(check: Callable[[], T], reads: int, deadline_s: float, what: str,
             poll_s: float = 0.05) -> T:
    """``check`` must pass on ``reads`` consecutive judged reads, ``poll_s`` apart; return the last value.

    A read raising NotYet (cannot judge now) does not count and does not break the run;
    a read raising AssertionError fails at once, naming the read it came on.
    """
    if reads < 1:
        raise ValueError("reads must be at least 1")
    end = time.monotonic() + deadline_s
    good, n, last = 0, 0, "nothing seen yet"
    while True:
        n += 1
        try:
            value = check()
        except NotYet as exc:
            last = str(exc) or type(exc).__name__
        except AssertionError as exc:
            raise CheckError(f"{what}: read {n} failed after {good} good reads in a row: {exc}") from None
        else:
            good += 1
            if good >= reads:
                return value
        if time.monotonic() >= end:
            raise CheckError(f"{what}: only {good} of {reads} reads judged in {deadline_s:g} s; "
                             f"last seen: {last}")
        time.sleep(poll_s)
