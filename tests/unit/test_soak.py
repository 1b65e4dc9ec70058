"""benchmarks/soak.py reads each run's JUnit XML and names flaky tests with their messages."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
soak = importlib.util.module_from_spec(spec)
sys.modules.setdefault("soak", soak)  # dataclasses look their module up there
spec.loader.exec_module(soak)


def junit(tmp_path: Path, name: str, cases: str) -> Path:
    path = tmp_path / name
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{cases}</testsuite>'
                    "</testsuites>")
    return path


OK = '<testcase classname="tests.cluster.test_dns" name="test_round_robin" time="1.0"/>'
SKIP = '<testcase classname="tests.cluster.test_x" name="test_vm" time="0"><skipped message="vm"/></testcase>'


def fail(name: str, message: str) -> str:
    return (f'<testcase classname="tests.cluster.test_failover" name="{name}" time="2.0">'
            f'<failure message="{message}">traceback</failure></testcase>')


def run(tmp_path, index, cases, exit_code=0):
    counts, failed, passed = soak.read_junit(junit(tmp_path, f"{index}.xml", cases))
    return soak.Run(index, 10.0, exit_code, counts, failed, passed)


def test_a_test_that_fails_once_is_flaky_and_named_with_its_message(tmp_path):
    good = '<testcase classname="tests.cluster.test_failover" name="test_crash[mail01]" time="2"/>'
    runs = [run(tmp_path, 1, OK + SKIP + good),
            run(tmp_path, 2, OK + SKIP + fail("test_crash[mail01]", "AssertionError: VIP 192.168.56.101\n"
                                                                    "  held by nobody")
                + fail("test_always", "boom"), exit_code=1),
            run(tmp_path, 3, OK + SKIP + good + fail("test_always", "boom again"), exit_code=1)]
    assert runs[0].counts == {"passed": 2, "failed": 0, "skipped": 1} and runs[0].green
    lines = soak.summary(runs)
    assert lines[3] == "soak: 3 runs, 1 passed, 2 failed"
    flaky = lines.index("flaky tests (failed in some runs, passed in others): 1")
    assert lines[flaky + 1] == ("  tests.cluster.test_failover::test_crash[mail01]: failed in 1 of 3 runs "
                                "(first: run 2): failure: AssertionError: VIP 192.168.56.101 held by nobody")
    assert lines[flaky + 2] == "failing tests (never passed): 1"
    assert lines[flaky + 3].startswith("  tests.cluster.test_failover::test_always: failed in 2 of 3 runs "
                                       "(first: run 2): failure: boom")


def test_a_run_without_junit_is_a_failed_run(tmp_path):
    r = soak.Run(1, 5.0, 2, failed={"(session)": "no JUnit XML written; last line: usage"})
    assert not r.green
    assert "soak: 1 runs, 0 passed, 1 failed" in soak.summary([r])
