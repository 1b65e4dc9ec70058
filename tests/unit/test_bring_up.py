"""Bring-up progress per node (``Cluster.on_up``): what the drivers tell, and how it is shown.

The lab's and Vagrant's readiness polls are run against a simulated cluster
(the scenario runner's ``SimCluster``): each node is told once per stage, only
during ``up()``, and ``carp`` only for a node that alone holds its model VIPs.
"""

from __future__ import annotations

from test_scenario_load import TOPOLOGY
from test_scenario_run import SimCluster

from mailring.cluster import Result, Status, UpStep
from mailring.drivers.lab import ready as lab_ready
from mailring.drivers.vagrant import ready as vagrant_ready
from mailring.scenario.progress import Progress, bring_up
from mailring.topology import load

TOPO = load(TOPOLOGY)


class LabSim(SimCluster):
    """A simulated cluster answering the lab's readiness questions (init's service table)."""

    def __init__(self, topology) -> None:
        super().__init__(topology)
        self.told: list[UpStep] = []
        self.on_up = self.told.append

    def service_states(self, node: str) -> dict:
        return {"postfix": {"running": True, "exited": [], "stopped": False},
                "carp-backup": {"running": False, "exited": [], "stopped": False}}  # held

    def up(self) -> None:  # what the lab's up() tells, without namespaces
        self.up_begin()
        try:
            for node in self.topology.nodes:
                self.up_step(node, "started")
            lab_ready.wait_owners(self, deadline_s=2)
        finally:
            self.up_end()


def test_the_lab_tells_each_node_started_ready_and_carp_once_during_up() -> None:
    c = LabSim(TOPO)
    c.up()
    seen = [(s.node, s.stage) for s in c.told]
    assert len(seen) == len(set(seen))  # once per node and stage, though polled many times
    nodes, mail = set(TOPO.nodes), {n.name for n in TOPO.mail_nodes}
    for stage, who in (("started", nodes), ("ready", nodes), ("carp", mail)):
        assert {n for n, s in seen if s == stage} == who, stage
    for node in mail:  # in order per node
        assert [s for n, s in seen if n == node] == ["started", "ready", "carp"]
    carp = next(s for s in c.told if s.stage == "carp" and s.node == "mail02")
    mine = sorted(v for v, o in TOPO.expected_owners().items() if o == "mail02")
    assert str(carp) == f"mail02: CARP converged (holds {', '.join(mine)})"


def test_nothing_is_told_outside_up_and_two_holders_are_not_converged() -> None:
    c = LabSim(TOPO)
    c.up_carp(c.status())  # not in up(): a later readiness poll (after boot) tells nobody
    assert c.told == []
    c.up_begin()
    held = c.status().holders
    vip = next(v for v, o in TOPO.expected_owners().items() if o == "mail01")
    held[vip] = ["mail01", "mail05"]  # a backup still holds it too
    c.up_carp(Status(c.status().nodes, held))
    assert "mail01" not in {s.node for s in c.told} and "mail02" in {s.node for s in c.told}
    c.up_end()


class Guest:
    """The part of a guest adapter Vagrant's readiness uses."""

    def __init__(self, booting: set[str]) -> None:
        self.booting = booting

    def ready_argv(self, role: str) -> list[str]:
        return ["list-units"]

    def not_ready(self, role: str, text: str, rc: int) -> str:
        return "postfix.service activating" if text in self.booting else ""


class VagrantSim(SimCluster):
    def __init__(self, topology) -> None:
        super().__init__(topology)
        self.told: list[UpStep] = []
        self.on_up = self.told.append

    def run(self, node, argv, timeout=60.0, input=None):
        return Result(argv, 0, node, "")  # the guest reads the node's name


def test_vagrant_tells_ready_per_node_as_its_units_come_up_then_carp() -> None:
    c = VagrantSim(TOPO)
    c.up_begin()
    guest = Guest(booting={"mail03"})
    problem = vagrant_ready.not_ready(c, guest, list(TOPO.nodes), set())
    assert problem == "mail03: postfix.service activating"
    assert {s.node for s in c.told if s.stage == "ready"} == set(TOPO.nodes) - {"mail03"}
    assert not [s for s in c.told if s.stage == "carp"]  # VIPs are judged once every node runs
    guest.booting.clear()
    assert vagrant_ready.not_ready(c, guest, list(TOPO.nodes), set()) == ""
    assert {s.node for s in c.told if s.stage == "carp"} == {n.name for n in TOPO.mail_nodes}
    c.up_end()


def test_bring_up_shows_a_line_per_node_and_stage_and_unhooks_itself(capsys) -> None:
    c = LabSim(TOPO)
    c.told = []
    bring_up(c, Progress(plain=True))
    err = capsys.readouterr().err
    assert "  mail01: started" in err and "  mail05: CARP converged (holds " in err
    assert "  client01: daemons running (postfix)" in err  # the held one is not running yet
    assert f"bringing lab sim up: {len(TOPO.nodes)}/{len(TOPO.nodes)} started, " in err
    assert f"{len(TOPO.mail_nodes)}/{len(TOPO.mail_nodes)} CARP converged" in err
    assert c.on_up is None and c.told == []  # bring_up's own hook, removed after up()
