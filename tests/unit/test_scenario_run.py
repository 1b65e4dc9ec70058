"""The scenario runner's own logic on a simulated cluster (no root, no daemons).

``SimCluster`` moves a crashed node's VIPs to the model's owners a moment
later and answers the probe's timeline request with attempts that fail while
a VIP has no holder, so the runner's timing, recording, judging and healing
are exercised end to end in a few seconds. The real thing runs on the lab
(`mailring scenario`); this only checks the harness.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from test_scenario_load import TOPOLOGY

from mailring.cluster import Cluster, NodeStatus, Result, Running, Status
from mailring.runs import RunFolder
from mailring.scenario import load
from mailring.scenario.progress import Progress
from mailring.scenario.run import run

TAKEOVER_S = 0.4


class SimRunning(Running):
    def __init__(self, cluster: SimCluster, req: dict) -> None:
        self.cluster, self.req, self.t0 = cluster, req, time.time()
        self.done_at: float | None = None

    def _lines(self, until: float) -> list[str]:
        """The probe's lines invoked before ``until``, in time order: a later peek only appends,
        as a real probe's stdout does."""
        lines, step = [], 1 / self.req["hz"]
        for tgt in self.req["targets"]:
            t = self.t0
            while t < until:
                ok = bool(self.cluster.holders_at(t).get(tgt["host"]))
                pt = t + self.cluster.probe_offset  # the client node's clock
                line = {"t": pt, "end": pt + 0.005, "target": tgt["name"], "type": "ok" if ok else "fail"}
                if not ok:
                    line["error"] = "timed out"
                lines.append(line)
                t += step
        return [json.dumps(x) for x in sorted(lines, key=lambda x: x["t"])]

    def peek(self) -> str:
        return "".join(x + "\n" for x in self._lines(time.time()))

    def stop(self, timeout: float = 10.0) -> Result:
        self.done_at = self.done_at or time.time()
        lines = self._lines(self.done_at)
        done = json.dumps({"done": True, "attempts": len(lines)})
        return Result([], 0, "".join(x + "\n" for x in lines + [done]), "")


class SimCluster(Cluster):
    NAME = "sim"

    def __init__(self, topology, lab: str = "sim", probe_offset: float = 0.0) -> None:
        super().__init__(topology, lab)
        self.probe_offset = probe_offset  # the client's clock minus this host's (a VM's is its own)
        self.down_nodes: set[str] = set()
        self.changes: list[tuple[float, dict[str, list[str]]]] = [(0.0, self._owners())]
        self.lock = threading.Lock()
        self.calls: list[str] = []

    def _owners(self) -> dict[str, list[str]]:
        return {v: ([o] if o else []) for v, o in self.topology.expected_owners(self.down_nodes).items()}

    def holders_at(self, t: float) -> dict[str, list[str]]:
        with self.lock:
            return [h for (at, h) in self.changes if at <= t][-1]

    def _fault(self, node: str, down: bool) -> None:
        now = time.time()
        with self.lock:
            before = [h for (_, h) in self.changes][-1]
            (self.down_nodes.add if down else self.down_nodes.discard)(node)
            gap = {v: [n for n in held if n != node] if down else held for v, held in before.items()}
            self.changes += [(now, gap), (now + TAKEOVER_S, self._owners())]

    def crash(self, node: str) -> None:
        self.calls.append(f"crash {node}")
        self._fault(node, True)

    def boot(self, node: str) -> None:
        self.calls.append(f"boot {node}")
        self._fault(node, False)

    def status(self) -> Status:
        held = self.holders_at(time.time())
        nodes = {n: NodeStatus(n, "crashed" if n in self.down_nodes else "up", "")
                 for n in self.topology.nodes}
        return Status(nodes, held, {n: "crashed" for n in self.down_nodes})

    def start(self, node: str, argv: list[str]) -> Running:
        return SimRunning(self, json.loads(argv[-1]))

    def probe_argv(self) -> list[str]:
        return ["probe"]

    def log_text(self, node: str, service: str) -> str:
        return f"{node} {service} log\n" if service == "postfix" else ""

    def faults(self) -> dict[str, str]:
        return {n: "crashed" for n in self.down_nodes}

    def record_fault(self, node: str, state: str | None) -> None: ...
    def up(self) -> None: ...
    def down(self) -> None: ...
    def run(self, node, argv, timeout=60.0, input=None): ...
    def stop_daemon(self, node, daemon): ...
    def start_daemon(self, node, daemon): ...
    def isolate(self, node): ...
    def rejoin(self, node): ...


SCENARIO = """name: sim
description: crash and boot on a simulated cluster
probes: {services: [smtp], hz: 20}
steps:
  - {do: crash, node: mail02, after: converged, expect: {max_outage: MAXs}}
  - {do: boot, node: mail02, at: 2s, expect: {max_outage: 1s}}
"""


def run_sim(tmp_path, max_outage: str, probe_offset: float = 0.0):
    path = tmp_path / "sim.yaml"
    path.write_text(SCENARIO.replace("MAXs", max_outage))
    scenario = load(path, TOPOLOGY)
    cluster = SimCluster(scenario.topology, probe_offset=probe_offset)
    folder = RunFolder.create("sim", root=tmp_path / "runs")
    return cluster, folder, run(scenario, cluster, folder, Progress(plain=True))


def test_a_run_records_judges_and_reports(tmp_path):
    cluster, folder, verdict = run_sim(tmp_path, "3s")
    assert verdict["valid"] is True, verdict
    assert cluster.calls == ["crash mail02", "boot mail02"]
    checks = [(r["check"], r["step"]) for r in verdict["results"]]
    assert ("owners", 1) in checks and ("max_outage", 1) in checks and ("one_holder", None) in checks
    outage = next(r for r in verdict["results"] if r["check"] == "max_outage" and r["step"] == 1)
    assert TAKEOVER_S * 1000 - 100 <= outage["figures"]["outage_ms"] <= TAKEOVER_S * 1000 + 200
    assert outage["vip"] in [str(v.address) for v in cluster.topology.vips_owned_by("mail02")]
    faults = list(folder.lines("faults.jsonl"))
    assert [(f["what"], f["fault"]) for f in faults] == [("invoke", "crash mail02"), ("heal", "crash mail02")]
    history = list(folder.lines("history.jsonl"))
    assert {h["service"] for h in history} == {"smtp"} and any(h["outcome"] == "fail" for h in history)
    assert list(folder.lines("ownership.jsonl"))
    assert (folder.path / "logs" / "sim" / "mail01" / "postfix.log").exists()
    assert (folder.path / "junit.xml").exists() and "<svg" in (folder.path / "report.html").read_text()


def test_a_tight_max_outage_fails_naming_step_service_and_vip(tmp_path):
    _, _, verdict = run_sim(tmp_path, "1ms")
    assert verdict["valid"] is False
    bad = [r for r in verdict["results"] if r["valid"] is False]
    assert bad[0]["check"] == "max_outage" and bad[0]["step"] == 1 and bad[0]["service"] == "smtp"
    assert bad[0]["message"].startswith(f"step 1 (crash mail02): smtp@{bad[0]['vip']}: outage ")
    assert bad[0]["message"].endswith("> max_outage 1 ms")


def test_an_interrupted_run_heals_and_leaves_an_unknown_verdict(tmp_path, monkeypatch):
    path = tmp_path / "sim.yaml"
    path.write_text(SCENARIO.replace("MAXs", "3s"))
    scenario = load(path, TOPOLOGY)
    cluster = SimCluster(scenario.topology)
    real_boot = cluster.boot

    def interrupted(node: str) -> None:  # Ctrl-C while step 2 runs
        cluster.boot = real_boot
        raise KeyboardInterrupt

    cluster.boot = interrupted
    folder = RunFolder.create("sim", root=tmp_path / "runs")
    with pytest.raises(KeyboardInterrupt):
        run(scenario, cluster, folder, Progress(plain=True))
    assert cluster.calls[-1] == "boot mail02" and not cluster.down_nodes  # healed in finally
    v = json.loads((folder.path / "verdict.json").read_text())
    assert v["valid"] == "unknown" and "KeyboardInterrupt" in v["results"][0]["message"]
    assert (folder.path / "report.html").exists()


@pytest.mark.parametrize("offset", [-3600.0, 86400.0])  # a client clock an hour behind, a day ahead
def test_step_times_are_taken_on_the_probes_clock_so_outages_are_judged_on_one_clock(tmp_path, offset):
    _, folder, verdict = run_sim(tmp_path, "1ms", probe_offset=offset)
    assert verdict["valid"] is False  # the crash's outage is found in the history, not missed
    outage = next(r for r in verdict["results"] if r["check"] == "max_outage" and r["step"] == 1)
    assert TAKEOVER_S * 1000 - 100 <= outage["figures"]["outage_ms"] <= TAKEOVER_S * 1000 + 200, outage
    owners = next(r for r in verdict["results"] if r["check"] == "owners" and r["step"] == 1)
    assert owners["valid"] is True and owners["figures"]["reached_ms"] < 2000  # host clock, samples too
    invoke = next(f for f in folder.lines("faults.jsonl") if f["what"] == "invoke")
    assert abs(invoke["probe_t"] - invoke["t"] - offset) < 1.0
    meta = folder.meta()
    assert abs(meta["probe_start"] - meta["start"] - offset) < 1.0
    assert "<svg" in (folder.path / "report.html").read_text()


class HangSim(SimCluster):
    """A simulated cluster whose driver can stop and continue processes."""

    def freeze(self, node: str, daemon: str | None = None) -> None:
        self.calls.append(f"freeze {node} {daemon}")

    def thaw(self, node: str, daemon: str | None = None) -> None:
        self.calls.append(f"thaw {node} {daemon}")


HANG = """name: hung-sim
description: a hung Postfix on a simulated cluster
probes: {services: [smtp], hz: 20}
steps:
  - {do: hang, node: mail02, daemon: postfix, at: 0.5s, expect: {owners: model}}
  - {do: resume, node: mail02, daemon: postfix, at: 1s}
"""


def test_hang_and_resume_run_where_the_driver_supports_them(tmp_path):
    path = tmp_path / "hang.yaml"
    path.write_text(HANG)
    scenario = load(path, TOPOLOGY)
    cluster = HangSim(scenario.topology)
    assert HangSim.supports("hang") and not SimCluster.supports("hang")
    verdict = run(scenario, cluster, RunFolder.create("hang", root=tmp_path / "runs"), Progress(plain=True))
    assert verdict["valid"] is True, verdict
    assert cluster.calls == ["freeze mail02 postfix", "thaw mail02 postfix"]


def test_hang_is_refused_before_anything_starts_where_the_driver_cannot(tmp_path):
    from mailring.errors import InputError

    path = tmp_path / "hang.yaml"
    path.write_text(HANG)
    scenario = load(path, TOPOLOGY)
    cluster = SimCluster(scenario.topology)
    folder = RunFolder.create("hang", root=tmp_path / "runs")
    with pytest.raises(InputError, match=r"step 1: do: the sim driver has no hang"):
        run(scenario, cluster, folder, Progress(plain=True))
    assert cluster.calls == [] and not (folder.path / "history.jsonl").exists()
