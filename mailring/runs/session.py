"""A pytest session's run folder: the same format as a scenario run's.

One folder per session, ``runs/<stamp>-pytest/``, shared by xdist workers
through the controller's stamp (``MAILRING_RUN_STAMP``). Tests' probe
timelines go to history.jsonl and their faults to faults.jsonl, each line
tagged with the test's node id; at the end the controller writes one result
per test to verdict.json and junit.xml (pytest's own --junitxml file, when
one was asked for, is copied as it is) and draws report.html.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING, Any

import pytest

from mailring.runs.records import collect_logs, record_fault, record_history
from mailring.runs.report import warm_up, write_report
from mailring.runs.store import JUNIT, META, VERDICT, RunFolder, runs_root, write_atomic
from mailring.runs.verdict import Result, junit, verdict

if TYPE_CHECKING:
    from mailring.client import Op
    from mailring.cluster import Cluster
    from mailring.nemesis import Event

FOLDER = pytest.StashKey[RunFolder]()
CURRENT = pytest.StashKey[str]()
REPORTS = pytest.StashKey[list[Result]]()


def stamp_run() -> str:
    """This session's run stamp: the one inherited (an xdist worker gets its controller's), else now."""
    stamp = os.environ.get("MAILRING_RUN_STAMP") or time.strftime("%Y%m%d-%H%M%S")
    os.environ["MAILRING_RUN_STAMP"] = stamp
    return stamp


def is_controller() -> bool:
    return os.environ.get("PYTEST_XDIST_WORKER") is None


def folder(config: pytest.Config) -> RunFolder:
    """This session's run folder, made on first use (``runs/latest`` points at it)."""
    if FOLDER in config.stash:
        return config.stash[FOLDER]
    f = _path(config)
    f.path.mkdir(parents=True, exist_ok=True)
    if not (f.path / META).exists():
        f.write_meta({"name": "pytest", "start": time.time(), "driver": config.getoption("mailring_driver"),
                      "lab": config.getoption("mailring_lab"), "args": list(config.invocation_params.args)})
        f.point_latest()
    config.stash[FOLDER] = f
    return f


def _path(config: pytest.Config) -> RunFolder:
    return RunFolder(runs_root(config.rootpath / "runs") / f"{stamp_run()}-pytest")


def used(config: pytest.Config) -> bool:
    """Did this session (or, under xdist, one of its workers) make its run folder? Only sessions
    that used a cluster do; a unit-test session leaves runs/ alone."""
    return FOLDER in config.stash or _path(config).path.exists()


def current_test(config: pytest.Config) -> str:
    return config.stash.get(CURRENT, "")


def set_current_test(config: pytest.Config, nodeid: str) -> None:
    config.stash[CURRENT] = nodeid


def history_recorder(config: pytest.Config):
    """A callback for ``Client(record=...)``: a stopped timeline's ops into history.jsonl."""

    def record(ops: list[Op]) -> None:
        record_history(folder(config), ops, test=current_test(config))

    return record


def record_nemesis(config: pytest.Config, events: list[Event], nodeid: str) -> None:
    """A test's fault events into faults.jsonl (the nemesis' target is the fault's text)."""
    for e in events:
        record_fault(folder(config), e.what, e.fault, e.fault, t=e.t, test=nodeid)


def record_report(config: pytest.Config, report: pytest.TestReport) -> None:
    """One result per test: its call (or a failed/skipped setup or teardown)."""
    if report.when != "call" and report.outcome == "passed":
        return
    valid: Any = {"passed": True, "failed": False}.get(report.outcome, "skipped")
    if report.when != "call" and report.outcome == "failed":
        valid = "unknown"  # an error in a fixture: the test could not be carried out
    crash = getattr(report.longrepr, "reprcrash", None)
    if report.outcome == "passed":
        text = ""
    elif crash is not None:  # the assertion's own message, not the traceback
        text = str(crash.message).splitlines()[0]
    else:
        text = (str(report.longreprtext).strip().splitlines() or [""])[-1]
    results = config.stash.setdefault(REPORTS, [])
    results.append(Result("test", valid, text, name=report.nodeid, duration_s=report.duration))


class ResultRecorder:
    """A plugin object that keeps one result per test (on the controller too, under xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record_report(self.config, report)
        # an xdist controller of a cluster session: it waits on the workers, with a page to draw
        if is_controller() and self.config.getoption("numprocesses", None) and used(self.config):
            warm_up()


def finish(config: pytest.Config) -> None:
    """Controller only: verdict.json, junit.xml and report.html for the session's folder, and
    ``runs/latest`` pointed at it."""
    if not (is_controller() and used(config)):
        return
    f = folder(config)
    results = [r for r in config.stash.get(REPORTS, []) if r.valid != "skipped"]
    f.update_meta(end=time.time())
    f.write_json(VERDICT, verdict(results, "pytest",
                                         skipped=len(config.stash.get(REPORTS, [])) - len(results)))
    xml = getattr(config.option, "xmlpath", None)
    if xml and os.path.exists(xml):
        shutil.copy(xml, f.path / JUNIT)
    else:
        write_atomic(f.path / JUNIT, junit(results, "pytest"))
    write_report(f)
    f.point_latest()  # the session ends last: its scenario items' folders came after it was made


def collect_node_logs(config: pytest.Config, cluster: Cluster) -> None:
    """Copy every node's daemon logs into the session's folder before the cluster goes away."""
    collect_logs(folder(config), cluster)
