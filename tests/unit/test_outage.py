"""Outage windows computed from synthetic timeline histories."""

from __future__ import annotations

import pytest

from mailring.checks import CheckError
from mailring.checks.windows import outage_windows, require_samples, single_outage
from mailring.client import Op

T = "smtp@192.168.56.101"


def history(pattern: str, target: str = T, step: float = 0.1) -> list[Op]:
    """'.' is a success, 'x' a failure; attempt i is invoked at t = 100 + i * step."""
    return [Op(t=100 + i * step, end=100 + i * step + 0.01, target=target,
               type="ok" if c == "." else "fail", error=None if c == "." else "refused")
            for i, c in enumerate(pattern)]


def test_no_failure_has_no_window() -> None:
    ops = history("......")
    assert outage_windows(ops, T) == []
    assert single_outage(ops, T) is None


def test_one_window_measured_from_last_ok_to_recovery() -> None:
    ops = history("..xxx..")
    [w] = outage_windows(ops, T)
    assert (w.first_fail, w.last_fail, w.recovered, w.last_ok, w.attempts) == pytest.approx(
        (100.2, 100.4, 100.5, 100.1, 3))
    assert w.duration == pytest.approx(0.4)
    assert w.errors == ("refused",)
    assert single_outage(ops, T) == w


def test_window_at_start_counts_from_first_failure() -> None:
    [w] = outage_windows(history("xx..."), T)
    assert w.last_ok is None
    assert w.duration == pytest.approx(0.2)


def test_two_windows_and_single_outage_rejects_them() -> None:
    ops = history(".x..xx.")
    windows = outage_windows(ops, T)
    assert [w.attempts for w in windows] == [1, 2]
    assert [w.duration for w in windows] == pytest.approx([0.2, 0.3])
    with pytest.raises(CheckError, match="expected at most one outage window.*saw 2"):
        single_outage(ops, T)


def test_never_recovered() -> None:
    [w] = outage_windows(history("..xxx"), T)
    assert w.recovered is None and w.duration is None and w.attempts == 3
    assert "never recovered" in str(w)


def test_other_targets_and_order_do_not_matter() -> None:
    ops = history("..x..", target=T) + history("xxxxx", target="imap@192.168.56.102")
    ops.reverse()  # lines arrive from several threads, not in invoke order
    [w] = outage_windows(ops, T)
    assert w.attempts == 1 and w.duration == pytest.approx(0.2)


def test_empty_history_raises() -> None:
    with pytest.raises(CheckError, match="made 0 attempts, at least 1"):
        require_samples([], T, 1)
    with pytest.raises(CheckError, match="made 3 attempts, at least 10"):
        require_samples(history("...", target=T) + history("....", target="other"), T, 10)
    assert len(require_samples(history("....."), T, 5)) == 5
