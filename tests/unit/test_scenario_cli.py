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
