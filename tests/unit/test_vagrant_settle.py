"""After a snapshot pauses the VMs, Vagrant's bring-up resyncs every mail node's clock and waits
until the VIPs stay put (``mailring.drivers.vagrant.ready.settle_after_pause``), against a
simulated cluster: a flap of one read starts the steady time again, a clock that will not
sync is named."""

from __future__ import annotations

import pytest
from test_scenario_load import TOPOLOGY
from test_scenario_run import SimCluster

from mailring.cluster import Result, Status
from mailring.drivers.vagrant import ready
from mailring.topology import load

TOPO = load(TOPOLOGY)
VIP = next(v for v, o in TOPO.expected_owners().items() if o == "mail03")


class Paused(SimCluster):
    """A cluster whose reads show a backup holding mail03's VIP too in the reads named."""

    def __init__(self, flaps: set[int], resync_fails: set[str] = frozenset()) -> None:
        super().__init__(TOPO)
        self.flaps, self.resync_fails = flaps, resync_fails
        self.reads, self.ran = 0, []

    def status(self) -> Status:
        st = super().status()
        self.reads += 1
        if self.reads in self.flaps or -1 in self.flaps:
            return Status(st.nodes, {**st.holders, VIP: [*st.holders[VIP], "mail02"]}, st.faults)
        return st

    def run(self, node, argv, timeout=60.0, input=None):
        self.ran.append((node, argv))
        return Result(argv, 1 if node in self.resync_fails else 0, "", "no server reachable")


class Guest:
    def resync_clock_argv(self) -> list[str]:
        return ["resync"]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(ready, "POLL_S", 0.01)


def test_a_flap_starts_the_steady_time_again() -> None:
    c = Paused(flaps={3})
    ready.wait_steady(c, set(), steady_s=0.05, deadline_s=5)
    steady_reads = c.reads - 3  # every read after the flap, at 10 ms, until 50 ms were clean
    assert steady_reads >= 5


def test_a_vip_that_keeps_two_holders_times_out_naming_it() -> None:
    c = Paused(flaps={-1})
    with pytest.raises(TimeoutError, match=f"not steady.*last seen: VIPs not where the model says.*{VIP}"):
        ready.wait_steady(c, set(), steady_s=0.05, deadline_s=0.3)


def test_every_mail_node_is_resynced_and_a_clock_that_will_not_sync_is_named(monkeypatch) -> None:
    monkeypatch.setattr(ready, "takeover_window_s", lambda advbase: 0.02)  # steady for 40 ms here
    c = Paused(flaps=set())
    mail = [n.name for n in TOPO.mail_nodes]
    ready.settle_after_pause(c, Guest(), mail, set(), deadline_s=30)
    assert sorted(c.ran) == sorted((n, ["resync"]) for n in mail)
    c = Paused(flaps=set(), resync_fails={"mail04"})
    with pytest.raises(TimeoutError, match="clocks not back in step.*mail04.*no server reachable"):
        ready.settle_after_pause(c, Guest(), mail, set(), deadline_s=30)
    assert c.reads == 0  # no VIP is judged before the clocks are in step
