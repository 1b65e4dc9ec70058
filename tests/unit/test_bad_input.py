"""The bad-input catalogue: `mailring validate` and `mailring scenario` fed broken files.

Each broken file (missing field, wrong type, duplicate address or vhid, an
address outside the network, a VIP whose backups skip a node, an unknown
node, a negative or backwards time, a YAML syntax error, an empty file,
binary garbage, a file of several MiB) gets exactly one line on stderr that
names the file and the field and says what to do, exit status 2, and
nothing created: no namespace of the lab, no build folder, no run folder.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mailring.cli.main import main
from mailring.drivers.lab.names import BUILD, PREFIX

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "fixtures" / "topology.yaml"
LAB = "never-made-badinput"
BASE = yaml.safe_load(TOPOLOGY.read_text())
BIG = 5 << 20  # "several MiB"
GARBAGE = bytes(range(256)) * 64


def _edit(change) -> str:
    data = copy.deepcopy(BASE)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def _drop(d: dict, *path):
    for key in path[:-1]:
        d = d[key]
    del d[path[-1]]


def _set(d: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = value


# (case, file content, the field the line must name, words the line must hold)
TOPOLOGIES = [
    ("missing field", _edit(lambda d: _drop(d, "nodes", "mail03", "address")),
     "nodes.mail03.address", "Field required; add it"),
    ("missing section", _edit(lambda d: _drop(d, "carp")), "carp", "Field required; add it"),
    ("wrong type", _edit(lambda d: _set(d, ("vips", 4, "vhid"), "five")), "vips[4].vhid",
     "valid integer"),
    ("wrong type of section", _edit(lambda d: _set(d, ("nodes",), ["mail01", "mail02"])), "nodes",
     "valid dictionary"),
    ("duplicate address", _edit(lambda d: _set(d, ("nodes", "mail04", "address"), "192.168.56.13")),
     "nodes.mail04.address", "already used by nodes.mail03.address"),
    ("VIP on a node address", _edit(lambda d: _set(d, ("vips", 2, "address"), "192.168.56.15")),
     "vips[2].address", "already used by nodes.mail05.address"),
    ("duplicate vhid", _edit(lambda d: _set(d, ("vips", 7, "vhid"), 3)), "vips[7].vhid",
     "vhid 3 is already used by vips[2]"),
    ("address outside the network", _edit(lambda d: _set(d, ("nodes", "mail02", "address"), "10.1.2.3")),
     "nodes.mail02.address", "not a host address in network 192.168.56.0/24"),
    ("VIP outside the network", _edit(lambda d: _set(d, ("vips", 9, "address"), "192.168.57.110")),
     "vips[9].address", "not a host address in network"),
    ("broadcast address", _edit(lambda d: _set(d, ("nodes", "client01", "address"), "192.168.56.255")),
     "nodes.client01.address", "not a host address"),
    ("backups skip a node", _edit(lambda d: _drop(d, "vips", 0, "backups", "mail03")),
     "vips[0].backups", "skips mail03"),
    ("backups skip a neighbour",
     _edit(lambda d: _set(d, ("vips", 5, "backups"), {"mail02": 20, "mail01": 100})),
     "vips[5].backups", "skips mail04"),
    ("unknown owner", _edit(lambda d: _set(d, ("vips", 3, "owner"), "mail09")), "vips[3].owner",
     "'mail09' is not a node"),
    ("unknown backup", _edit(lambda d: _set(d, ("vips", 3, "backups", "mail09"), 200)),
     "vips[3].backups.mail09", "'mail09' is not a mail node"),
    ("unknown DNS server", _edit(lambda d: _set(d, ("dns", "server"), "ns01")), "dns.server",
     "'ns01' is not a node"),
    ("negative number", _edit(lambda d: _set(d, ("dns", "ttl"), -900)), "dns.ttl",
     "greater than or equal to 1"),
    ("unknown field", _edit(lambda d: _set(d, ("carp", "advbse"), 1)), "carp.advbse",
     "remove it or fix its spelling"),
    ("YAML syntax error", "name: ring\nnodes: {mail01: [\n", "line 3", "not valid YAML"),
    ("YAML tab", "name: ring\nnetwork:\n\t- x\n", "line 3", "not valid YAML"),
    ("empty file", "", "(file)", "the file is empty"),
    ("only a comment", "# nothing here\n", "(file)", "the file is empty"),
    ("a list, not a mapping", "- mail01\n- mail02\n", "(top level)", "expected a mapping"),
    ("binary garbage", GARBAGE, "(file)", "binary data"),
    ("not UTF-8", b"name: ring\nnetwork: \xff\xfe\n", "line 2", "not UTF-8 text (byte 20)"),
    ("several MiB", TOPOLOGY.read_text() + "# " + "x" * BIG + "\n", "(file)",
     "MiB is far larger than a topology file can be"),
]

GOOD_SCENARIO = """name: t
description: a crash and a boot
steps:
  - {do: crash, node: mail01, at: 2s, expect: {max_outage: {smtp: 4s}}}
  - {do: boot, node: mail01, after: converged}
"""


def _scenario(old: str, new: str) -> str:
    assert old in GOOD_SCENARIO
    return GOOD_SCENARIO.replace(old, new)


def _with_topology(over: str) -> str:
    return _scenario("steps:", f"topology: {{extends: {TOPOLOGY}, {over}}}\nsteps:")


SCENARIOS = [
    ("missing field", _scenario("node: mail01, at: 2s, ", "at: 2s, "), "step 1: node", "Field required"),
    ("missing steps", "name: t\ndescription: nothing\n", "steps", "Field required; add it"),
    ("wrong type", _scenario("node: mail01, at", "node: [mail01], at"), "step 1: node",
     "valid string"),
    ("wrong type of probes", _scenario("steps:", "probes: {hz: fast}\nsteps:"), "probes.hz",
     "valid number"),
    ("unknown node", _scenario("node: mail01, at", "node: mail09, at"), "step 1: node",
     "unknown node 'mail09'"),
    ("unknown service", _scenario("smtp: 4s", "smtps: 4s"), "step 1: expect.max_outage.smtps",
     "not probed"),
    ("negative time", _scenario("at: 2s", "at: -2s"), "step 1: at", "cannot be negative"),
    ("negative number", _scenario("at: 2s", "at: -2"), "step 1: at", "cannot be negative"),
    ("negative outage", _scenario("smtp: 4s", "smtp: -4s"), "step 1: expect.max_outage.smtp",
     "cannot be negative"),
    ("time without unit", _scenario("at: 2s", "at: 2"), "step 1: at", "like 4s or 1500ms"),
    ("backwards time", _scenario("after: converged", "at: 1s"), "step 2: at", "goes back in time"),
    ("duplicate address", _with_topology("nodes: {mail02: {role: mail, address: 192.168.56.11}}"),
     "topology.nodes.mail02.address", "already used"),
    ("duplicate vhid", _with_topology("vips: [{address: 192.168.56.101, vhid: 1, owner: mail01, "
                                      "backups: {mail02: 20, mail05: 100, mail03: 140, mail04: 180}}, "
                                      "{address: 192.168.56.102, vhid: 1, owner: mail02, "
                                      "backups: {mail01: 20, mail03: 100, mail05: 140, mail04: 180}}]"),
     "topology.vips[1].vhid", "already used"),
    ("address outside the network", _with_topology("nodes: {mail02: {role: mail, address: 10.0.0.2}}"),
     "topology.nodes.mail02.address", "not a host address"),
    ("topology file missing", _scenario("steps:", "topology: nowhere.yaml\nsteps:"), "topology",
     "not found"),
    ("YAML syntax error", "name: t\nsteps: [\n", "line 3", "not valid YAML"),
    ("empty file", "", "the file is empty", "docs/scenarios.md"),
    ("binary garbage", GARBAGE, "(file)", "binary data"),
    ("several MiB", GOOD_SCENARIO + "# " + "y" * BIG + "\n", "(file)",
     "MiB is far larger than a scenario file can be"),
]


@pytest.fixture
def nothing_made(tmp_path, monkeypatch):
    """Run in an empty folder; afterwards no namespace, build folder or run folder of the lab."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILRING_RUNS", raising=False)
    monkeypatch.delenv("MAILRING_LAB", raising=False)
    yield tmp_path
    assert not (BUILD / LAB).exists()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "build").exists()
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    assert f"{PREFIX}-{LAB}-" not in res.stdout


def _write(folder: Path, content: str | bytes, name: str = "broken.yaml") -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _one_line(capsys, code: int, path: Path, field: str, words: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mailring: {path}: {field}"), lines[0]
    assert words in lines[0], lines[0]
    assert len(lines[0]) < 400, lines[0]  # a line a person reads, not a dump of the file
    return lines[0]


@pytest.mark.parametrize("case,content,field,words", TOPOLOGIES, ids=[c[0] for c in TOPOLOGIES])
def test_validate_refuses_a_broken_topology_in_one_line(nothing_made, capsys, case, content, field, words):
    path = _write(nothing_made, content)
    _one_line(capsys, main(["validate", "--lab", LAB, str(path)]), path, field, words)


@pytest.mark.parametrize("case,content,field,words", TOPOLOGIES, ids=[c[0] for c in TOPOLOGIES])
def test_scenario_refuses_a_broken_topology_in_one_line(nothing_made, capsys, case, content, field, words):
    good = _write(nothing_made, GOOD_SCENARIO, "good.yaml")
    topo = _write(nothing_made, content)
    out = main(["scenario", "--lab", LAB, "--topology", str(topo), str(good)])
    line = _one_line(capsys, out, good, "topology", words)
    assert f"{topo}: {field}" in line


@pytest.mark.parametrize("case,content,field,words", SCENARIOS, ids=[c[0] for c in SCENARIOS])
def test_scenario_refuses_a_broken_file_in_one_line(nothing_made, capsys, case, content, field, words):
    good = _write(nothing_made, GOOD_SCENARIO, "good.yaml")
    bad = _write(nothing_made, content)
    # the good file comes first: nothing may start before every file has been checked
    out = main(["scenario", "--lab", LAB, "--topology", str(TOPOLOGY), str(good), str(bad)])
    _one_line(capsys, out, bad, field, words)


def test_several_problems_are_still_one_line_with_a_count(nothing_made, capsys):
    path = _write(nothing_made, _edit(lambda d: (_set(d, ("vips", 7, "vhid"), 3),
                                                 _set(d, ("dns", "server"), "ns01"))))
    line = _one_line(capsys, main(["validate", str(path)]), path, "vips[7].vhid", "already used")
    assert line.endswith("(1 more after this one)")


def test_the_shipped_topologies_are_good() -> None:
    for path in sorted((ROOT / "fixtures").glob("topology*.yaml")):
        assert main(["validate", str(path)]) == 0, path


def test_the_console_script_exits_2_on_garbage(nothing_made) -> None:
    bad = _write(nothing_made, GARBAGE)
    res = subprocess.run([sys.executable, "-m", "mailring.cli.main", "validate", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr == f"mailring: {bad}: (file): binary data (NUL bytes), not YAML text; " \
                         "name a topology file\n"
