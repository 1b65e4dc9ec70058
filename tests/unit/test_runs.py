"""The run folder package: folder layout, records, verdict merging, JUnit and the report page."""

from __future__ import annotations

import json
import os
from xml.etree import ElementTree as ET

from mailring.client import Op
from mailring.cluster import Status
from mailring.runs import RunFolder
from mailring.runs.records import (
    fault_intervals,
    history_line,
    record_fault,
    record_history,
    record_ownership,
    split_target,
)
from mailring.runs.report import fault_lanes, render, spans, write_report
from mailring.runs.verdict import Result, junit, merge, results_of, write_verdict

T0 = 1_700_000_000.0


def test_create_makes_a_stamped_folder_and_points_latest_at_it(tmp_path):
    a = RunFolder.create("domino chain", root=tmp_path, stamp="20260101-020000", driver="lab")
    b = RunFolder.create("domino chain", root=tmp_path, stamp="20260101-020000")
    assert a.path.name == "20260101-020000-domino-chain"
    assert b.path.name == "20260101-020000-domino-chain.2"  # same second: never the same folder
    assert os.readlink(tmp_path / "latest") == b.path.name
    assert a.meta()["driver"] == "lab" and a.meta()["name"] == "domino chain"
    a.update_meta(end=5.0)
    assert a.meta()["end"] == 5.0 and a.meta()["driver"] == "lab"


def test_history_lines_name_service_host_outcome_and_latency(tmp_path):
    f = RunFolder.create("h", root=tmp_path)
    ops = [Op(T0 + 1, T0 + 1.25, "smtp@192.168.56.101", "fail", error="timed out"),
           Op(T0, T0 + 0.01, "smtp@192.168.56.101", "ok")]
    record_history(f, ops, test="t1")
    lines = list(f.lines("history.jsonl"))
    assert [x["t"] for x in lines] == [T0, T0 + 1]  # in invoke order
    assert lines[1] == {"t": T0 + 1, "end": T0 + 1.25, "target": "smtp@192.168.56.101", "service": "smtp",
                        "host": "192.168.56.101", "outcome": "fail", "latency_ms": 250.0,
                        "error": "timed out", "test": "t1"}
    assert split_target("imap@mail.ring.test") == ("imap", "mail.ring.test")
    assert history_line(ops[1])["outcome"] == "ok"


def test_fault_intervals_pair_invoke_with_heal_of_the_same_target():
    events = [{"t": 1, "what": "invoke", "fault": "crash mail01", "target": "mail01"},
              {"t": 2, "what": "invoke", "fault": "stop postfix on mail02", "target": "mail02/postfix"},
              {"t": 5, "what": "heal", "fault": "crash mail01", "target": "mail01"}]
    ivs = fault_intervals(events, end=9)
    assert [(iv["fault"], iv["start"], iv["end"], iv["healed"]) for iv in ivs] == [
        ("crash mail01", 1, 5, True), ("stop postfix on mail02", 2, 9, False)]
    assert fault_lanes(ivs) == [0, 1]
    assert fault_lanes([{"start": 0, "end": 1}, {"start": 1, "end": 2}]) == [0, 0]


def test_faults_one_after_another_share_one_lane_in_the_figure():
    """A suite's hundred faults, most of them one after another, take a few lanes, not a
    row each (each lane is labelled "fault" on the left of the timeline)."""
    from mailring.client import Op
    from mailring.runs.report import lane_count, service_figure

    faults = [{"start": 2 * i, "end": 2 * i + 1, "fault": f"crash mail0{i % 5 + 1}", "healed": True}
              for i in range(10)] + [{"start": 0.5, "end": 3, "fault": "stop postfix on mail02"}]
    assert lane_count(faults) == 2 and lane_count([]) == 0
    ops = [Op(t=t / 10, end=t / 10 + 0.01, target="smtp@192.168.56.101", type="ok", error=None)
           for t in range(200)]
    svg = service_figure("smtp", ops, faults, 0, 20)
    assert svg.count("<!-- fault -->") == 2 and svg.count("<!-- 192.168.56.101 -->") == 1


def test_spans_merge_runs_of_one_outcome():
    parts = spans([(0, True), (1, True), (2, False), (3, False), (4, True)], end=6)
    assert parts == {True: [(0, 2), (4, 2)], False: [(2, 2)]}
    assert spans([], end=3) == {True: [], False: []}


def test_merge_ranks_false_over_unknown_over_true():
    assert merge([True, True]) is True
    assert merge([True, "unknown"]) == "unknown"
    assert merge(["unknown", False, True]) is False
    assert merge([]) == "unknown"


def test_verdict_and_junit_carry_each_result_with_its_figures(tmp_path):
    f = RunFolder.create("v", root=tmp_path)
    results = [Result("owners", True, step=1, step_text="crash mail01", figures={"converged_ms": 3100}),
               Result("max_outage", False, "smtp@192.168.56.101: outage 3950 ms > max_outage 1 ms",
                      step=1, step_text="crash mail01", service="smtp", vip="192.168.56.101",
                      figures={"outage_ms": 3950, "max_outage_ms": 1})]
    v = write_verdict(f, results, "domino")
    assert v["valid"] is False and v["failed"] == 1 and v["checked"] == 2
    assert json.loads((f.path / "verdict.json").read_text())["results"][1]["figures"]["outage_ms"] == 3950
    assert results_of(f) == results
    suite = ET.fromstring(junit(results, "domino")).find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert cases[1].get("name") == "step 1 (crash mail01) max_outage smtp@192.168.56.101"
    assert cases[1].find("failure").get("message").startswith("smtp@192.168.56.101: outage 3950 ms")
    assert cases[0].find("failure") is None


def test_report_is_one_page_with_timelines_outages_and_ownership(tmp_path):
    f = RunFolder.create("report", root=tmp_path, driver="lab", lab="t")
    f.update_meta(start=T0, end=T0 + 10)
    ops = [Op(T0 + k / 10, T0 + k / 10 + 0.01, "smtp@192.168.56.101", "fail" if 30 <= k < 60 else "ok")
           for k in range(100)]
    record_history(f, ops)
    record_fault(f, "invoke", "crash mail01", "mail01", t=T0 + 3, step=1)
    record_fault(f, "heal", "crash mail01", "mail01", t=T0 + 8, step=2)
    for k in range(10):
        holder = ["mail02"] if 4 <= k < 8 else ["mail01"]
        record_ownership(f, Status(nodes={}, holders={"192.168.56.101": holder}), t=T0 + k)
    write_verdict(f, [Result("owners", True, step=1, step_text="crash mail01")], "report")
    page = render(f)
    assert page.count("<svg") == 2  # one service, one ownership chart; nothing loaded from elsewhere
    assert "<script" not in page and "http://" not in page.split("<svg", 1)[0]
    assert "3100 ms" in page  # last ok at 2.9 s, first ok again at 6.0 s
    assert "crash mail01" in page and "mail02" in page and "PASS" in page
    assert write_report(f).read_text() == page


def test_mailring_report_redraws_the_page_and_refuses_a_folder_that_is_not_a_run(tmp_path):
    import subprocess
    import sys

    f = RunFolder.create("again", root=tmp_path)
    record_history(f, [Op(T0, T0 + 0.01, "imap@192.168.56.102", "ok")])
    write_verdict(f, [Result("samples", True)], "again")
    cmd = [sys.executable, "-m", "mailring.cli.main", "report"]
    res = subprocess.run(cmd + [str(tmp_path / "latest")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (f.path / "report.html").read_text().count("<svg") == 1
    assert res.stdout.strip().endswith("report.html (verdict: True)")
    res = subprocess.run(cmd + [str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == (f"mailring: {tmp_path}: not a run folder (no meta.json); "
                                  "name a folder under runs/, e.g. runs/latest")


def test_a_pytest_session_writes_the_same_folder_format(tmp_path):
    import subprocess
    import sys

    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "from mailring.client import Op\n"
        "from mailring.runs.session import folder, history_recorder\n"
        "def test_ok(request):\n"
        "    folder(request.config)\n"
        "    history_recorder(request.config)([Op(1.0, 1.1, 'smtp@192.168.56.101', 'ok')])\n"
        "def test_bad():\n"
        "    assert 1 == 2, 'one is not two'\n"
        "@pytest.mark.skip(reason='not here')\n"
        "def test_skipped():\n"
        "    pass\n")
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items()  # a session of its own, not an xdist worker's
           if not k.startswith(("PYTEST_", "MAILRING_RUN_STAMP"))}
    env["MAILRING_RUNS"] = str(runs)
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "mailring.pytest_plugin", "-q",
                          "-p", "no:cacheprovider", str(tmp_path / "test_x.py")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert res.returncode == 1, res.stdout
    f = RunFolder(runs / "latest")
    assert f.path.resolve().name.endswith("-pytest")
    v = json.loads((f.path / "verdict.json").read_text())
    assert v["valid"] is False and v["checked"] == 2 and v["skipped"] == 1
    bad = [r for r in v["results"] if r["valid"] is False][0]
    assert bad["name"].endswith("test_x.py::test_bad") and "one is not two" in bad["message"]
    suite = ET.parse(f.path / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    [line] = f.lines("history.jsonl")
    assert line["test"].endswith("test_x.py::test_ok") and line["service"] == "smtp"
    assert (f.path / "report.html").exists()
    assert "run folder: " in res.stdout and f.path.resolve().name in res.stdout
