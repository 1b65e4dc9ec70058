"""The nightly CI files: the workflow passes GitHub's workflow schema and calls scripts/nightly.sh.

actionlint's PyPI wrapper downloads its binary at build time, which a machine
that reaches only package registries cannot do, so the workflow is checked with
check-jsonschema's vendored GitHub workflow schema instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
NIGHTLY = ROOT / "scripts" / "nightly.sh"


def schema_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(path)], capture_output=True, text=True,
                          timeout=120)


def test_workflow_passes_the_github_workflow_schema():
    res = schema_check(WORKFLOW)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("old,new", [("workflow_dispatch:", "workflow_dispatchh:"),
                                     ("timeout-minutes: 90", "timeout-minute: 90"),
                                     ("runs-on: [self-hosted, linux, mailring-lab]", "")])
def test_a_broken_workflow_fails_the_schema_check(tmp_path, old, new):
    text = WORKFLOW.read_text()
    assert old in text
    bad = tmp_path / "nightly.yml"
    bad.write_text(text.replace(old, new, 1))
    assert schema_check(bad).returncode == 1


def test_workflow_runs_nightly_and_on_demand_on_self_hosted_runners():
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as true
    assert on["schedule"][0]["cron"] and "workflow_dispatch" in on
    jobs = wf["jobs"]
    assert set(jobs) == {"lab", "vagrant"}
    assert {"self-hosted", "vagrant"} <= set(jobs["vagrant"]["runs-on"])
    assert "self-hosted" in jobs["lab"]["runs-on"]
    for name, job in jobs.items():
        runs = " ".join(s.get("run", "") for s in job["steps"])
        assert f"scripts/nightly.sh {name}" in runs
        uploads = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
        assert uploads and uploads[0]["if"] == "always()" and "runs/" in uploads[0]["with"]["path"]


def test_nightly_script_passes_shellcheck(need_tool):
    subprocess.run(["bash", "-n", str(NIGHTLY)], check=True)
    res = subprocess.run([need_tool("shellcheck"), str(NIGHTLY)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_nightly_script_refuses_an_unknown_driver():
    res = subprocess.run([str(NIGHTLY), "docker"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip() == "nightly.sh: driver 'docker': use lab or vagrant"
