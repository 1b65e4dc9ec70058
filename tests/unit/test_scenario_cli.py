"""`mailring scenario` as a command on a simulated cluster (no root, no daemons): which files it
reads and which lab it runs them on.

A run repoints ``runs/latest`` at its new folder, so a file named through that link
(``runs/latest/scenario.yaml``, the last run's copy) is pinned to the folder it names when
the command starts, not read again through the moved link.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from test_scenario_load import TOPOLOGY
from test_scenario_run import SimCluster

from mailring.cli import run_cmds
from mailring.runs import RunFolder

QUICK = """name: NAME
description: a short crash on a simulated cluster
probes: {services: [smtp], hz: 20}
steps:
  - {do: crash, node: mail02, at: 0s}
  - {do: boot, node: mail02, after: converged}
"""


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    """runs/ under tmp_path, and every lab a SimCluster that is already up."""
    monkeypatch.setenv("MAILRING_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(run_cmds, "open_cluster", lambda topo, driver, lab: SimCluster(topo, lab=lab))
    return tmp_path / "runs"


def scenario_cmd(*files: Path, topology: Path = TOPOLOGY) -> int:
    args = argparse.Namespace(files=[str(f) for f in files], topology=str(topology), lab="sim",
                              driver="lab", keep_cluster=False)
    return run_cmds.cmd_scenario(args)


def earlier_run(runs: Path, name: str) -> Path:
    """A finished run folder, runs/latest pointing at it, holding its scenario's copy."""
    folder = RunFolder.create(name, root=runs)
    (folder.path / "scenario.yaml").write_text(QUICK.replace("NAME", name))
    assert (runs / "latest").resolve() == folder.path.resolve()
    return folder.path


def names_run(runs: Path) -> list[str]:
    metas = sorted((json.loads(p.read_text()) for p in runs.glob("*/meta.json") if not p.parent.is_symlink()),
                   key=lambda m: m["start"])
    return [m["name"] for m in metas if "steps" in m]  # the folders a scenario ran in, in order


def test_the_last_runs_copy_named_through_runs_latest_runs_again(runs):
    old = earlier_run(runs, "earlier")
    assert scenario_cmd(runs / "latest" / "scenario.yaml") == 0
    assert names_run(runs) == ["earlier"]
    new = (runs / "latest").resolve()
    assert new != old.resolve()
    assert (new / "scenario.yaml").read_text() == (old / "scenario.yaml").read_text()
    recorded = json.loads((new / "meta.json").read_text())["scenario"]
    assert "latest" not in recorded and Path(recorded).resolve() == (old / "scenario.yaml").resolve()


def test_a_later_file_through_runs_latest_is_the_one_latest_named_when_the_command_started(
        runs, tmp_path):
    earlier_run(runs, "earlier")
    first = tmp_path / "first.yaml"
    first.write_text(QUICK.replace("NAME", "first"))
    assert scenario_cmd(first, runs / "latest" / "scenario.yaml") == 0
    assert names_run(runs) == ["first", "earlier"]  # not "first" twice


# -- a lab of the same name brought up from another topology ------------------------------------
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def recorded_lab(tmp_path, topology: Path, record: dict):
    """A LabCluster of ``topology`` whose lab record (build/<lab>/lab.json) says ``record``."""
    from mailring.drivers.lab.cluster import LabCluster
    from mailring.drivers.lab.names import LabNames
    from mailring.topology import load

    cluster = LabCluster(load(topology), lab="other")
    cluster.names = LabNames("other", tmp_path / "build")
    cluster.names.root.mkdir(parents=True)
    cluster.names.state_file.write_text(json.dumps(record))
    return cluster


def test_the_lab_driver_refuses_a_lab_brought_up_from_another_topology(tmp_path):
    from mailring.errors import InputError
    from mailring.scenario.run import check_same_topology
    from mailring.topology import load

    ring = FIXTURES / "topology.yaml"
    lopsided = FIXTURES / "topology-lopsided.yaml"
    record = {"topology": str(ring), "fingerprint": load(ring).fingerprint()}
    check_same_topology(recorded_lab(tmp_path / "same", ring, record))
    copy = tmp_path / "copy.yaml"  # the same topology from another file is the same lab
    copy.write_text(ring.read_text())
    check_same_topology(recorded_lab(tmp_path / "copy", copy, record))
    with pytest.raises(InputError) as exc:
        check_same_topology(recorded_lab(tmp_path / "other", lopsided, record))
    assert str(exc.value) == (
        f"{lopsided}: --lab other: that lab runs another topology (brought up from {ring}); take it "
        "down first (mailring down --lab other) or run beside it under another lab name (--lab NAME)")
    older = {"topology": str(ring)}  # a record from before fingerprints: the file decides
    check_same_topology(recorded_lab(tmp_path / "older", ring, older))
    with pytest.raises(InputError, match="that lab runs another topology"):
        check_same_topology(recorded_lab(tmp_path / "older2", lopsided, older))


def test_the_same_file_changed_since_the_lab_came_up_is_another_topology(tmp_path):
    from mailring.errors import InputError
    from mailring.scenario.run import check_same_topology
    from mailring.topology import load

    topo = tmp_path / "topology.yaml"
    topo.write_text((FIXTURES / "topology.yaml").read_text())
    record = {"topology": str(topo), "fingerprint": load(topo).fingerprint()}
    topo.write_text(topo.read_text().replace("advbase: 1", "advbase: 2"))
    assert load(topo).fingerprint() != record["fingerprint"]
    with pytest.raises(InputError, match=r"brought up from .*topology.yaml, since changed\)"):
        check_same_topology(recorded_lab(tmp_path, topo, record))


def test_scenario_with_another_topology_than_the_running_lab_exits_2_and_starts_nothing(
        runs, monkeypatch, capsys, tmp_path):
    from mailring.cli.main import main

    made: list[SimCluster] = []

    def running_ring(topo, driver, lab):  # lab "sim" runs the fixtures' ring
        made.append(SimCluster(topo, lab=lab))
        made[-1].brought_up_from = lambda: (str(FIXTURES / "topology.yaml"), None)
        return made[-1]

    monkeypatch.setattr(run_cmds, "open_cluster", running_ring)
    scenario = tmp_path / "quick.yaml"
    scenario.write_text(QUICK.replace("NAME", "quick"))
    lopsided = FIXTURES / "topology-lopsided.yaml"
    assert main(["scenario", "--lab", "sim", "--topology", str(lopsided), str(scenario)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mailring: {lopsided}: --lab sim: that lab runs another topology") \
        and err.count("\n") == 1
    assert made and all(c.calls == [] for c in made) and not runs.exists()  # nothing started
