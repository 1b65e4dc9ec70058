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


def test_the_drivers_allowances_reach_sweeps_and_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """An emulated guest's driver gives each sweep attempt longer and each wait more time."""
    from types import SimpleNamespace

    import mailring.polling.convergence as convergence
    import mailring.polling.sweep as sweep_mod
    from mailring.checks.convergence import deadline_s
    from mailring.drivers.vagrant.cluster import VagrantCluster
    from mailring.speakers import SPEAKERS
    from mailring.topology import load
    from tests.unit.pinned import TOPOLOGY

    topo = load(TOPOLOGY)
    asked, deadlines = [], []

    class Cl:
        def __init__(self, cluster) -> None:
            self.cluster = cluster

        def request(self, req):
            asked.append({t["timeout"] for t in req["targets"]})
            return {"results": {t["name"]: {"ok": True, "banner": ""} for t in req["targets"]}}

    def fake_eventually(check, deadline, what, poll_s=0.05):
        deadlines.append(deadline)

    monkeypatch.setattr(sweep_mod, "eventually", fake_eventually)
    monkeypatch.setattr(convergence, "eventually", fake_eventually)
    for cls, timeout, settle in ((SimpleNamespace(SWEEP_TIMEOUT_S=2.0, SETTLE_S=0.0), 2.0, 0.0),
                                 (VagrantCluster, VagrantCluster.SWEEP_TIMEOUT_S, VagrantCluster.SETTLE_S)):
        asked.clear(), deadlines.clear()
        cluster = SimpleNamespace(SWEEP_TIMEOUT_S=cls.SWEEP_TIMEOUT_S, SETTLE_S=cls.SETTLE_S,
                                  topology=topo, carp_failed=lambda status=None: set(),
                                  carp_speaker=SPEAKERS["keepalived"])
        sweep_mod.sweep(Cl(cluster), topo, {})
        sweep_mod.wait_clean(Cl(cluster), topo, {}, 6.0, "clean")
        convergence.converge(cluster, failed={"mail01"})
        assert asked == [{timeout}]
        assert deadlines == [6.0 + settle, deadline_s(topo, {"mail01"}, SPEAKERS["keepalived"]) + settle]
    assert VagrantCluster.SWEEP_TIMEOUT_S > 2.0 and VagrantCluster.SETTLE_S > 0
