"""Scenario files: the shipped ones load; every broken one is refused with one line naming
the file, the step and the field, and `mailring scenario` exits 2 before starting anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailring.scenario import load, validate
from mailring.scenario.schema import parse_duration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "fixtures" / "scenarios").glob("*.yaml"))
TOPOLOGY = Path(__file__).parent / "data" / "topology.yaml"
if not TOPOLOGY.exists():
    TOPOLOGY = ROOT / "fixtures" / "topology.yaml"

GOOD = """name: t
description: a crash and a boot
steps:
  - {do: crash, node: mail01, at: 2s, expect: {max_outage: {smtp: 4s}}}
  - {do: boot, node: mail01, after: converged}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_article_cases_are_shipped_and_load():
    names = {p.stem for p in SHIPPED}
    assert {"single-crash", "domino-ring", "failback-after-reboot", "local-postfix-down",
            "local-dovecot-down", "maintenance-drain", "isolation-and-heal",
            "first-design-pileup"} <= names
    for path in SHIPPED:
        scenario, errors = validate(path)
        assert errors == [], errors
        assert scenario.steps and scenario.probes


def test_durations():
    assert parse_duration("4s") == 4.0
    assert parse_duration("1500ms") == 1.5
    assert parse_duration("2m") == 120.0
    for bad in ("4", 4, "4 sec", "-1s", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_good_file_gives_steps_probes_and_the_models_owners(tmp_path):
    s = load(write(tmp_path, GOOD), TOPOLOGY)
    assert [st.text for st in s.steps] == ["crash mail01", "boot mail01"]
    assert s.steps[0].max_outage == {"smtp": 4.0} and s.steps[0].at == 2.0
    assert s.steps[1].after == "converged"
    topo = s.topology
    assert len(s.probes) == len(topo.services) * len(topo.vips)  # default: all of them
    assert s.hz == 20
    assert s.out_of_carp(1) == {"mail01"} and s.out_of_carp(2) == set()
    assert s.expected_owners(1) == topo.expected_owners({"mail01"})


def test_owners_by_node_name_expand_to_that_nodes_vips(tmp_path):
    text = GOOD.replace("max_outage: {smtp: 4s}", "owners: {mail01: mail02}")
    s = load(write(tmp_path, text), TOPOLOGY)
    mine = [str(v.address) for v in s.topology.vips_owned_by("mail01")]
    assert s.steps[0].owners == {v: "mail02" for v in mine}
    assert all(s.expected_owners(1)[v] == "mail02" for v in mine)


BROKEN = [
    ("unknown verb", GOOD.replace("do: crash", "do: crsh"),
     "step 1: do: unknown verb 'crsh'; use one of boot, crash, drain, hang, heal, isolate, maint, ready, "
     "resume, start, stop"),
    ("unknown node", GOOD.replace("node: mail01, at", "node: mail09, at"),
     "step 1: node: unknown node 'mail09'; faults go to mail nodes: mail01, mail02, mail03, mail04, mail05"),
    ("time goes backwards", GOOD.replace("after: converged", "at: 1s"),
     "step 2: at: 1s goes back in time (an earlier step is at 2s); order steps by time"),
    ("missing field", GOOD.replace("node: mail01, at: 2s, ", "at: 2s, "),
     "step 1: node: Field required; add it"),
    ("missing time", GOOD.replace(", after: converged", ""),
     "step 2: give exactly one of at (e.g. at: 2s) or after: converged; fix the value"),
    ("bad duration", GOOD.replace("4s}", "4}"),
     "step 1: expect.max_outage.smtp: expected a duration like 4s or 1500ms, got 4; fix the value"),
    ("unknown field", GOOD.replace("do: boot", "do: boot, nod: mail01"),
     "step 2: nod: Extra inputs are not permitted (got 'mail01'); remove it or fix its spelling"),
    ("missing steps", "name: t\ndescription: x\n", "steps: Field required; add it"),
    ("inverse without fault", GOOD.replace("do: crash", "do: isolate"),
     "step 2: do: boot mail01 undoes no earlier crash; add a crash step before it or remove this one"),
    ("daemon missing", GOOD.replace("do: crash, node: mail01", "do: stop, node: mail01"),
     "step 1: daemon: stop needs a daemon; add one of postfix, dovecot, haproxy, carp, webmail, dns"),
    ("yaml error", "name: t\nsteps: [\n", "line 3: not valid YAML"),
    ("empty file", "", "the file is empty; write name, description and steps (see docs/scenarios.md)"),
    ("unprobed service", GOOD.replace("description:", "probes: {services: [imap]}\ndescription:"),
     "step 1: expect.max_outage.smtp: smtp is not probed; add it to probes.services or use one of imap"),
]


@pytest.mark.parametrize("case,text,line", BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_file_gets_one_line_naming_file_step_and_field(tmp_path, case, text, line):
    path = write(tmp_path, text)
    scenario, errors = validate(path, TOPOLOGY)
    assert scenario is None
    assert errors[0].startswith(f"{path}: {line}"), errors[0]
    assert "\n" not in errors[0]


@pytest.mark.parametrize("case,text,line", [BROKEN[i] for i in (0, 1, 2, 3, 10, 11)],
                         ids=["verb", "node", "time", "missing", "yaml", "empty"])
def test_mailring_scenario_exits_2_with_one_line_and_starts_nothing(tmp_path, case, text, line):
    good = write(tmp_path, GOOD, "good.yaml")
    bad = write(tmp_path, text)
    # the good file comes first: nothing may start before every file has been checked
    res = subprocess.run([sys.executable, "-m", "mailring.cli.main", "scenario", "--lab", "never-made",
                          "--topology", str(TOPOLOGY), str(good), str(bad)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith(f"mailring: {bad}: {line}")
    assert res.stdout == "" and not (tmp_path / "runs").exists()


def test_pytest_collects_scenario_files_as_items_and_a_broken_one_as_one_line(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    write(folder, GOOD, "crash-and-boot.yaml")
    bad = write(folder, GOOD.replace("do: crash", "do: crsh"), "broken.yaml")
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "mailring.pytest_plugin", "--collect-only",
                          "-q", "--topology", str(TOPOLOGY), str(folder)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "crash-and-boot.yaml::t" in res.stdout
    assert f"{bad}: step 1: do: unknown verb 'crsh'" in res.stdout
    assert "1 test collected, 1 error" in res.stdout, res.stdout


def test_no_mail_lost_is_a_whole_run_expectation(tmp_path):
    s = load(write(tmp_path, GOOD.replace("description:", "expect: {no_mail_lost: true}\ndescription:")),
             TOPOLOGY)
    assert s.no_mail_lost and not load(write(tmp_path, GOOD), TOPOLOGY).no_mail_lost
    path = write(tmp_path, GOOD.replace("max_outage: {smtp: 4s}", "no_mail_lost: true"))
    scenario, errors = validate(path, TOPOLOGY)
    assert scenario is None and errors[0] == (
        f"{path}: step 1: expect.no_mail_lost: an expectation for the whole run; put it in the "
        "scenario's expect, beside name and steps")
