"""Scenario files as pytest test items: ``pytest fixtures/scenarios`` runs each file, no code.

The plugin's ``pytest_collect_file`` hands ``scenarios/*.yaml`` here. A file
that does not load is a collection error of one line (file, step, field). A
scenario on the session's topology runs on the session's ``cluster``; one
that brings its own topology (the first design) gets a lab of its own,
brought up and taken down around it. Each item writes its own run folder and
fails with the verdict's first failed expectation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mailring.runs import RunFolder
from mailring.runs.store import runs_root
from mailring.runs.verdict import first_failure

if TYPE_CHECKING:
    from mailring.scenario.load import Scenario


def is_scenario_file(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") and path.parent.name == "scenarios"


class ScenarioFile(pytest.File):
    """One scenario file -> one test item named after the scenario."""

    lab = "mailring"  # the session's lab name; the plugin sets it

    def collect(self) -> Iterator[pytest.Item]:
        from mailring.scenario import validate

        scenario, errors = validate(self.path, self.config.getoption("mailring_topology"))
        if scenario is None:
            raise self.CollectError(errors[0])

        lab = self.lab

        def test_scenario(request: pytest.FixtureRequest) -> None:
            run_scenario_item(request, scenario, lab)

        test_scenario.__doc__ = scenario.description
        item = pytest.Function.from_parent(self, name=scenario.name, callobj=test_scenario)
        item.add_marker(pytest.mark.destructive)
        # a driver that lacks one of the scenario's faults (hang without freeze) skips it, saying which
        item.add_marker(pytest.mark.faults(*sorted({s.verb.kind for s in scenario.steps})))
        yield item


def run_scenario_item(request: pytest.FixtureRequest, scenario: Scenario, lab: str) -> None:
    from mailring.cluster import open_cluster
    from mailring.scenario.run import lab_for, run

    config = request.config
    driver = config.getoption("mailring_driver")
    own = None
    if scenario.own_topology:
        if driver == "lab" and os.geteuid() != 0:
            pytest.skip("the lab driver needs root (network, mount and PID namespaces); run as root")
        own = open_cluster(scenario.topology, driver=driver, lab=lab_for(lab, scenario))
    cluster = own or request.getfixturevalue("cluster")
    try:
        if own is not None:
            own.up()
        folder = RunFolder.create(scenario.name, root=runs_root(config.rootpath / "runs"),
                                  driver=driver, lab=cluster.lab)
        verdict = run(scenario, cluster, folder)
    finally:  # the run collected the nodes' logs and healed its faults
        if own is not None and not config.getoption("mailring_keep"):
            own.down()
    if verdict["valid"] is not True:
        pytest.fail(f"{first_failure(verdict)}; run folder {folder}", pytrace=False)
