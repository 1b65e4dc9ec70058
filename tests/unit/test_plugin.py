"""The pytest plugin fails loudly: no green run of skipped cluster tests, no tests on a broken cluster."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)


@pytest.fixture
def clean_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILRING_RUN_STAMP", raising=False)  # the plugin stamps the run


def test_the_cluster_suite_as_non_root_exits_with_an_error(pytester, monkeypatch, clean_stamp) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    pytester.makepyfile(test_lab="def test_a(cluster):\n    pass\n")
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "--driver", "lab")
    assert res.ret == 2
    res.stdout.fnmatch_lines(["*mailring: the lab driver needs root*"])
    res.stdout.no_fnmatch_line("*skipped*")


def test_unit_tests_as_non_root_still_run(pytester, monkeypatch, clean_stamp) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    pytester.makepyfile(test_pure="def test_a():\n    pass\n")
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "--driver", "lab")
    res.assert_outcomes(passed=1)


def test_a_cluster_the_nemesis_cannot_restore_stops_the_session(pytester, monkeypatch, clean_stamp) -> None:
    import mailring.polling.convergence as convergence

    def broken(*_a, **_kw):
        raise AssertionError("VIP 192.168.56.101: expected owner mail01, held by mail05")

    monkeypatch.setattr(convergence, "converge", broken)
    pytester.makepyfile(test_flow='''
import pytest
from mailring.topology import load

@pytest.fixture(scope="session")
def cluster():
    class Fake:
        topology = load()
    return Fake()

@pytest.mark.destructive
def test_one(nemesis):
    pass

@pytest.mark.destructive
def test_two(nemesis):
    pass
''')
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "-p", "no:randomly")
    res.assert_outcomes(passed=1, errors=1)  # test_two never ran
    res.stdout.fnmatch_lines(["*after test_flow.py::test_one the nemesis could not bring the cluster back "
                              "to the model: VIP 192.168.56.101: expected owner mail01, held by mail05*"])


def test_a_session_without_a_cluster_makes_no_run_folder(pytester, monkeypatch, clean_stamp) -> None:
    monkeypatch.setenv("MAILRING_RUNS", str(pytester.path / "runs"))
    pytester.makepyfile(test_pure="def test_a():\n    pass\n")
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin")
    res.assert_outcomes(passed=1)
    assert not (pytester.path / "runs").exists()
    res.stdout.no_fnmatch_line("*run folder:*")


def test_second_clusters_are_shared_and_go_down_when_the_worker_moves_on(pytester, monkeypatch,
                                                                        clean_stamp) -> None:
    """A second lab is made once for the tests that share it, kept while the next test is in
    the same file (a module fixture may hold it), and taken down before the first test of
    another file that does not use it, not at the end of the session."""
    import mailring.pytest_plugin as plugin
    from mailring.runs import session

    events: list[str] = []

    class Fake:
        def __init__(self, topology, driver, lab):
            self.topology, self.lab, self.failure_logs = topology, lab, None

        def up(self):
            events.append(f"up {self.lab}")

        def down(self):
            events.append(f"down {self.lab}")

    monkeypatch.setattr(plugin, "open_cluster", Fake)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # under -n 2 the lab would be t-gw0-x
    monkeypatch.setenv("MAILRING_RUNS", str(pytester.path / "runs"))
    monkeypatch.setattr(session, "collect_node_logs", lambda config, c: events.append(f"logs {c.lab}"))
    monkeypatch.setattr(plugin, "EVENTS", events, raising=False)
    pytester.makepyfile(test_1_designs='''
from mailring import pytest_plugin
from mailring.topology import DEFAULT_TOPOLOGY

def test_a(cluster_factory):
    pytest_plugin.EVENTS.append("a")
    first = cluster_factory(DEFAULT_TOPOLOGY, "x")
    assert cluster_factory(DEFAULT_TOPOLOGY, "x") is first

def test_m():
    pytest_plugin.EVENTS.append("m")

def test_b(cluster_factory):
    pytest_plugin.EVENTS.append("b")
    cluster_factory(DEFAULT_TOPOLOGY, "x")
''', test_2_other='''
from mailring import pytest_plugin

def test_c():
    pytest_plugin.EVENTS.append("c")

def test_d():
    pytest_plugin.EVENTS.append("d")
''', test_3_later='''
from mailring import pytest_plugin
from mailring.topology import DEFAULT_TOPOLOGY

def test_e(cluster_factory):
    pytest_plugin.EVENTS.append("e")
    cluster_factory(DEFAULT_TOPOLOGY, "x")
''')
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "-p", "no:randomly", "--lab", "t")
    res.assert_outcomes(passed=6)
    # kept over test_m (same file), down before test_c and test_d, which do not use it, made
    # again for test_e, and down at the end
    assert events == ["a", "up t-x", "m", "b", "logs t-x", "down t-x", "c", "d",
                      "e", "up t-x", "logs t-x", "down t-x"]


def test_a_scenario_item_is_skipped_on_a_driver_without_one_of_its_faults(pytester, monkeypatch,
                                                                           clean_stamp) -> None:
    from test_scenario_load import TOPOLOGY
    from test_scenario_run import HANG

    from mailring import pytest_plugin

    monkeypatch.setenv("MAILRING_RUNS", str(pytester.path / "runs"))
    monkeypatch.setattr(pytest_plugin, "_supports", lambda driver, kind, nodeid: kind != "hang")
    folder = pytester.mkdir("scenarios")
    (folder / "hung.yaml").write_text(HANG)
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "--driver", "vagrant",
                                       "--topology", str(TOPOLOGY), "-rs", str(folder))
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*the vagrant driver has no fault hang*"])


class _HalfUp:
    """A cluster whose up() stops halfway (a failure or Ctrl-C while VMs are provisioned)."""

    calls: list[str] = []

    def __init__(self, topology, lab: str, fail: BaseException) -> None:
        self.topology, self.lab, self.fail = topology, lab, fail
        self.failure_logs = None

    def up(self) -> None:
        self.calls.append("up")
        raise self.fail

    def down(self) -> None:
        self.calls.append("down")

    def log_text(self, node: str, service: str) -> str:
        self.calls.append("log_text")
        return ""


@pytest.mark.parametrize("fail", [RuntimeError("vagrant up failed"), KeyboardInterrupt()],
                         ids=["failure", "interrupt"])
def test_a_cluster_whose_up_stops_halfway_is_taken_down(pytester, monkeypatch, clean_stamp,
                                                        fail) -> None:
    import mailring.pytest_plugin as plugin
    monkeypatch.setenv("MAILRING_RUNS", str(pytester.path / "runs"))
    _HalfUp.calls = []
    monkeypatch.setattr(plugin, "open_cluster",
                        lambda topology, driver, lab: _HalfUp(topology, lab, fail))
    pytester.makepyfile(test_lab="def test_a(cluster):\n    pass\n")
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "-p", "no:randomly",
                                       no_reraise_ctrlc=True)
    assert res.ret != 0
    assert _HalfUp.calls == ["up", "down"]  # no logs read from nodes that never came up


def test_bad_input_to_up_exits_2_and_removes_nothing(pytester, monkeypatch, clean_stamp) -> None:
    import mailring.pytest_plugin as plugin
    from mailring.errors import InputError

    monkeypatch.setenv("MAILRING_RUNS", str(pytester.path / "runs"))
    _HalfUp.calls = []
    monkeypatch.setattr(plugin, "open_cluster", lambda topology, driver, lab: _HalfUp(
        topology, lab, InputError("vagrant is not installed; see docs/vagrant.md")))
    pytester.makepyfile(test_lab="def test_a(cluster):\n    pass\n")
    res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "-p", "no:randomly")
    assert res.ret == 2
    res.stdout.fnmatch_lines(["*mailring: vagrant is not installed; see docs/vagrant.md*"])
    assert _HalfUp.calls == ["up"]


def test_the_suite_runs_shared_lab_tests_then_long_ones_then_the_rest(pytester, monkeypatch,
                                                                      clean_stamp) -> None:
    """xdist hands each worker its next test as it finishes (--dist loadgroup): the order a
    worker's plugin leaves is the order they are handed out, longest first, collection order
    within; one process (no xdist) keeps the collection order."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # this unit run's own xdist worker
    pytester.makepyfile(test_a='''
import pytest

def test_quick():
    pass

@pytest.mark.long
def test_slow():
    pass

@pytest.mark.xdist_group("second")
def test_shared():
    pass

@pytest.mark.destructive
def test_fault():
    pass

def test_quick_too():
    pass
''', test_b='''
import pytest

pytestmark = pytest.mark.long

def test_slow_module():
    pass
''')
    def collected() -> list[str]:
        res = pytester.runpytest_inprocess("-p", "mailring.pytest_plugin", "--collect-only", "-q")
        return [line.split("::")[1] for line in res.stdout.lines if "::" in line]

    assert collected() == ["test_quick", "test_slow", "test_shared", "test_fault", "test_quick_too",
                           "test_slow_module"]
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert collected() == ["test_shared", "test_slow", "test_slow_module", "test_fault", "test_quick",
                           "test_quick_too"]


def test_an_xdist_group_runs_in_one_worker_and_the_groups_file_is_removed(pytester, monkeypatch) -> None:
    """pytest 9.2 ignores xdist's own group suffix (pytest-xdist#1386): the plugin's scheduler
    must keep a group together, where plain loadgroup would deal it out to both workers."""
    import mailring
    from mailring.scheduling import GROUPS_ENV

    for inherited in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", GROUPS_ENV):
        monkeypatch.delenv(inherited, raising=False)  # this unit run's own xdist worker's
    monkeypatch.setenv("PYTHONPATH", str(Path(mailring.__file__).parents[1]))
    monkeypatch.setenv("MAILRING_RUNS", str(pytester.path / "runs"))
    monkeypatch.setattr(tempfile, "tempdir", str(pytester.path))  # where the groups file goes
    monkeypatch.setenv("TMPDIR", str(pytester.path))
    pytester.makepyfile(test_g='''
import pytest

@pytest.mark.xdist_group("second")
@pytest.mark.parametrize("i", range(6))
def test_shared(i):
    pass

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    pass
''')
    res = pytester.runpytest_subprocess("-p", "mailring.pytest_plugin", "-n", "2", "--dist", "loadgroup",
                                        "-v", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=12)
    workers = {line.split()[0] for line in res.stdout.lines if "PASSED" in line and "test_shared" in line}
    assert len(workers) == 1, res.stdout.str()
    assert not list(pytester.path.glob("mailring-xdist-groups-*"))
