"""eventually() waits for a state to come; steadily() demands one that is already there."""

from __future__ import annotations

import pytest

from mailring.checks import CheckError, NotYet
from mailring.polling.wait import eventually, steadily


def reads(*outcomes):
    """A check that plays ``outcomes`` in order: True passes, "wait" is NotYet, False fails."""
    it = iter(outcomes)
    seen = []

    def check() -> int:
        o = next(it)
        seen.append(o)
        if o == "wait":
            raise NotYet("in flight")
        assert o, f"bad read {len(seen)}"
        return len(seen)

    return check, seen


def test_eventually_retries_not_yet_and_returns_the_value() -> None:
    check, seen = reads("wait", "wait", True)
    assert eventually(check, 5, "x", poll_s=0) == 3


def test_eventually_fails_at_once_on_an_assertion() -> None:
    check, seen = reads("wait", False, True)
    with pytest.raises(AssertionError, match="bad read 2"):
        eventually(check, 5, "x", poll_s=0)
    assert seen == ["wait", False]


def test_eventually_names_what_was_last_seen_on_timeout() -> None:
    def never() -> None:
        raise NotYet("still 3 holders")

    with pytest.raises(CheckError, match=r"ownership not reached after 0.1 s; last seen: still 3 holders"):
        eventually(never, 0.1, "ownership", poll_s=0.01)


def test_steadily_needs_consecutive_good_reads_and_skips_unjudged_ones() -> None:
    check, seen = reads(True, "wait", True, True)
    assert steadily(check, 3, 5, "x", poll_s=0) == 4


def test_steadily_fails_on_one_bad_read_among_good_ones() -> None:
    check, _ = reads(True, True, False, True, True, True)
    with pytest.raises(CheckError, match="all L7OK: read 3 failed after 2 good reads in a row: bad read 3"):
        steadily(check, 3, 5, "all L7OK", poll_s=0)


def test_steadily_times_out_when_nothing_can_be_judged() -> None:
    def never() -> None:
        raise NotYet("check in flight")

    with pytest.raises(CheckError, match="only 0 of 2 reads judged .* last seen: check in flight"):
        steadily(never, 2, 0.05, "x", poll_s=0.01)
