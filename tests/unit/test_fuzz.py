"""The fuzzer's alphabet, model, scenario writer and whole loop (Hypothesis, shrinking) on a
simulated cluster: no root, no daemons. ``SimCluster`` moves VIPs to the model's owners a moment
after each crash, isolation or stopped CARP and answers sweeps for every VIP someone holds, so a
topology that breaks the load promise is found, shrunk and written in seconds. The real thing
runs on the lab (``mailring fuzz``, tests/cluster/test_fuzz.py); this checks the harness."""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from mailring.cluster import Cluster, NodeStatus, Result, Status
from mailring.fuzz.moves import FaultState, Move
from mailring.fuzz.run import fuzz
from mailring.fuzz.spec import Failure, Options
from mailring.fuzz.write import scenario_text
from mailring.runs import RunFolder
from mailring.scenario import load as load_scenario
from mailring.scenario.progress import Progress
from mailring.topology import load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RING = load(FIXTURES / "topology.yaml")
LOPSIDED = load(FIXTURES / "topology-lopsided.yaml")
NOPREEMPT = load(FIXTURES / "topology-nopreempt.yaml")
TAKEOVER_S = 0.15


def test_no_double_crash_and_only_active_faults_are_undone() -> None:
    s = FaultState(RING)
    assert Move("crash", "mail01") in s.fault_moves("crash")
    assert s.undo_moves("crash") == []
    s.apply(Move("crash", "mail01"))
    assert Move("crash", "mail01") not in s.fault_moves("crash")
    assert s.undo_moves("crash") == [Move("boot", "mail01")]
    assert not any(m.node == "mail01" for k in ("stop", "drain", "isolate") for m in s.fault_moves(k))
    with pytest.raises(ValueError, match="not a legal step now: boot mail02"):
        s.apply(Move("boot", "mail02"))


def test_at_least_two_mail_nodes_stay_in_carp() -> None:
    s = FaultState(RING)
    for node in ("mail01", "mail02", "mail03"):
        s.apply(Move("crash", node))
    assert s.fault_moves("crash") == [] and s.fault_moves("isolate") == []
    assert Move("stop", "mail04", daemon="carp") not in s.fault_moves("stop")
    assert Move("stop", "mail04", daemon="postfix") in s.fault_moves("stop")
    assert s.load_bound() == 5 and s.in_carp() == ["mail04", "mail05"]


def test_a_service_is_promised_while_one_server_for_it_is_reachable() -> None:
    s = FaultState(RING)
    for node in ("mail01", "mail02", "mail03", "mail04"):
        s.apply(Move("stop", node, daemon="postfix"))
    assert all("smtp" in svcs and "submission" in svcs for svcs in s.served().values())
    s.apply(Move("isolate", "mail05"))  # the last Postfix is cut off: nobody serves SMTP
    served = s.served()
    assert all("smtp" not in svcs and "imap" in svcs for svcs in served.values())
    s.apply(Move("heal", "mail05"))
    s.apply(Move("drain", "mail05", service="smtp"))  # its own server drained, still the backup of others
    assert "smtp" in s.served()["192.168.56.101"] and "smtp" not in s.served()["192.168.56.109"]


def test_a_written_scenario_loads_and_carries_every_invariant(tmp_path) -> None:
    failure = Failure(1, [Move("stop", "mail02", daemon="postfix"), Move("crash", "mail01")], "max_load",
                      "mail02 holds 4 VIPs", {"observed": 4, "expected": 3, "converged_ms": 3100})
    path = tmp_path / "found.yaml"
    path.write_text(scenario_text(LOPSIDED, failure, Options(seed=7), "debian"))
    text = path.read_text()
    assert text.startswith("# Found by mailring fuzz --seed 7 --steps 20")
    assert "# Observed vs expected:\n# expected: 3\n# observed: 4" in text
    scenario = load_scenario(path, FIXTURES / "topology-lopsided.yaml")
    assert [s.text for s in scenario.steps] == ["stop mail02 postfix", "crash mail01"]
    assert all(s.after == "converged" and s.max_load == "fair" for s in scenario.steps)
    assert scenario.load_bound(2) == 3 and scenario.no_mail_lost
    assert set(scenario.steps[1].max_outage) == {"smtp", "pop3", "imap"}


def carp_fault(verb: str, state: str | None):
    """A SimCluster primitive that records ``verb node`` and takes the node out of CARP as ``state``
    (None: back in)."""
    def primitive(self: SimCluster, node: str) -> None:
        self.calls.append(f"{verb} {node}")
        self._carp(node, state)

    return primitive


class SimCluster(Cluster):
    """CARP faults move VIPs to the model's owners TAKEOVER_S later; other faults change nothing."""

    NAME = "sim"

    def __init__(self, topology, lab: str = "sim") -> None:
        super().__init__(topology, lab)
        self.out: dict[str, str] = {}  # node -> state, out of CARP
        self.holders = self._owners()
        self.lock = threading.Lock()
        self.calls: list[str] = []

    def _owners(self) -> dict[str, list[str]]:
        return {v: ([o] if o else []) for v, o in self.topology.expected_owners(set(self.out)).items()}

    def _carp(self, node: str, state: str | None) -> None:
        with self.lock:
            if state is None:
                self.out.pop(node, None)
            else:
                self.out[node] = state
                self.holders = {v: [n for n in h if n != node] for v, h in self.holders.items()}

        def settle() -> None:
            time.sleep(TAKEOVER_S)
            with self.lock:
                owners = self._owners()
                if self.topology.preempt:
                    self.holders = owners
                else:  # a live holder keeps its VIP; only a VIP whose holder left moves
                    self.holders = {v: h if h and h[0] not in self.out else owners[v]
                                    for v, h in self.holders.items()}

        threading.Thread(target=settle, daemon=True).start()

    crash = carp_fault("crash", "crashed")
    boot = carp_fault("boot", None)
    isolate = carp_fault("isolate", "isolated")
    rejoin = carp_fault("heal", None)

    def stop_daemon(self, node: str, daemon: str) -> None:
        self.calls.append(f"stop {node} {daemon}")
        if daemon == "carp":
            self._carp(node, "carp stopped")

    def start_daemon(self, node: str, daemon: str) -> None:
        self.calls.append(f"start {node} {daemon}")
        if daemon == "carp":
            self._carp(node, None)

    def status(self) -> Status:
        with self.lock:
            held = {v: list(h) for v, h in self.holders.items()}
            states = dict(self.out)
        nodes = {n: NodeStatus(n, states.get(n, "up") if states.get(n) != "carp stopped" else "up", "")
                 for n in self.topology.nodes}
        return Status(nodes, held, {n: s for n, s in states.items() if s != "carp stopped"})

    def run(self, node: str, argv: list[str], timeout: float = 60.0, input: str | None = None) -> Result:
        req = json.loads(argv[-1])
        assert req["kind"] == "sweep"
        held = self.status().holders
        results = {t["name"]: {"ok": bool(held.get(t["host"])), "error": "timed out"} for t in req["targets"]}
        return Result(argv, 0, json.dumps({"results": results}), "")

    def haproxy_command(self, node: str, command: str) -> str:
        return "# pxname,svname,status,check_status\n"

    def start(self, node, argv): ...
    def probe_argv(self) -> list[str]:
        return ["probe"]

    def faults(self) -> dict[str, str]:
        return self.status().faults

    def record_fault(self, node: str, state: str | None) -> None: ...
    def up(self) -> None:
        self.calls.append("up")
        self.out, self.holders = {}, self._owners()

    def down(self) -> None:
        self.calls.append("down")

    def log_text(self, node: str, service: str) -> str:
        return ""


def sim_fuzz(tmp_path, topo, **kw):
    cluster = SimCluster(topo)
    folder = RunFolder.create("fuzz", root=tmp_path / "runs")
    options = Options(mail=False, kinds=("crash", "isolate", "stop"), **kw)
    return cluster, folder, fuzz(cluster, folder, options, Progress(plain=True))


def test_a_sound_ring_passes_every_step_and_ends_healed(tmp_path) -> None:
    cluster, folder, verdict = sim_fuzz(tmp_path, RING, steps=6, seed=3, budget_s=60)
    assert verdict["valid"] is True, verdict
    steps = [r for r in verdict["results"] if r["check"] == "step"]
    assert len(steps) == 6 and all(r["valid"] is True for r in steps)
    assert steps[0]["figures"]["load_bound"] >= steps[0]["figures"]["max_load"]
    assert cluster.out == {} and cluster.status().holders == {
        v: [o] for v, o in RING.expected_owners().items()}
    assert "<td>1 #1 " in (folder.path / "report.html").read_text()  # each step's verdict in the report


def test_a_lopsided_ring_is_found_shrunk_to_one_step_and_written(tmp_path) -> None:
    cluster, folder, verdict = sim_fuzz(tmp_path, LOPSIDED, steps=8, seed=1, budget_s=120, examples=5)
    assert verdict["valid"] is False
    final = verdict["results"][-1]
    assert final["check"] == "fuzz" and final["figures"] == {"steps": 1, "check": "max_load"}
    path = Path(verdict["scenario"])
    assert path.parent == folder.path and verdict["replay"] == f"mailring scenario {path}"
    scenario = load_scenario(path, FIXTURES / "topology-lopsided.yaml")
    assert len(scenario.steps) == 1 and scenario.steps[0].verb.name in ("crash", "isolate", "stop")
    assert "# Observed vs expected:\n# expected: 3\n# observed: 4" in path.read_text()
    assert cluster.out == {}  # healed


def test_no_preemption_is_found_as_owners_that_never_come_back_in_two_steps(tmp_path, monkeypatch) -> None:
    import mailring.fuzz.check
    import mailring.fuzz.session
    from mailring.polling.convergence import converge

    bound = 4 * TAKEOVER_S  # the sim converges in TAKEOVER_S, not in CARP time
    monkeypatch.setattr(mailring.fuzz.check, "deadline_s", lambda topo, failed: bound)
    monkeypatch.setattr(mailring.fuzz.session, "converge", partial(converge, deadline=bound))
    monkeypatch.setattr(mailring.fuzz.session, "SAMPLE_PERIOD_S", 0.05)
    cluster, folder, verdict = sim_fuzz(tmp_path, NOPREEMPT, steps=8, seed=2, budget_s=120, examples=5)
    assert verdict["valid"] is False and verdict["restarts"] >= 1  # healed, restarted to the model
    assert verdict["results"][-1]["figures"] == {"steps": 2, "check": "owners"}
    scenario = load_scenario(verdict["scenario"], FIXTURES / "topology-nopreempt.yaml")
    first, second = scenario.steps
    assert second.verb.name == first.verb.inverse and second.node == first.node
    assert "up" in cluster.calls and cluster.out == {}


@pytest.mark.parametrize(("argv", "line"), [
    (["--steps", "0"], "mailring: --steps: expected a whole number of at least 1, got '0'; fix the value"),
    (["--budget", "5"], "mailring: --budget: expected a duration like 4s or 1500ms, got '5'; fix the value"),
    (["--seed", "x"], "mailring: --seed: expected a whole number, got 'x'; fix the value"),
    (["--topology", "/nonexistent/topology.yaml"], "mailring: /nonexistent/topology.yaml: file not found"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_starts(argv, line, capsys) -> None:
    from mailring.cli.main import main

    assert main(["fuzz", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1


def test_a_lab_of_the_same_name_running_another_topology_is_refused_before_anything_starts(
        monkeypatch, capsys, tmp_path) -> None:
    from mailring.cli import fuzz_cmds
    from mailring.cli.main import main

    made: list[SimCluster] = []

    def running_ring(args):  # lab "lop" was brought up from the ring, not the lopsided file
        made.append(SimCluster(load(args.topology), lab=args.lab))
        made[-1].brought_up_from = lambda: (str(FIXTURES / "topology.yaml"), RING.fingerprint())
        return made[-1]

    monkeypatch.setattr(fuzz_cmds, "cluster_of", running_ring)
    monkeypatch.setenv("MAILRING_RUNS", str(tmp_path / "runs"))
    lopsided = FIXTURES / "topology-lopsided.yaml"
    assert main(["fuzz", "--lab", "lop", "--topology", str(lopsided)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mailring: {lopsided}: --lab lop: that lab runs another topology") \
        and err.count("\n") == 1
    assert made and made[0].calls == [] and not (tmp_path / "runs").exists()


def test_ctrl_c_mid_sequence_heals_everything_and_leaves_an_unknown_verdict(tmp_path) -> None:
    class Interrupted(SimCluster):
        def isolate(self, node: str) -> None:
            super().isolate(node)
            raise KeyboardInterrupt

    cluster = Interrupted(RING)
    folder = RunFolder.create("fuzz", root=tmp_path / "runs")
    options = Options(mail=False, kinds=("isolate",), steps=10, seed=5, budget_s=60)
    with pytest.raises(KeyboardInterrupt):
        fuzz(cluster, folder, options, Progress(plain=True))
    assert cluster.out == {} and "isolate" in " ".join(cluster.calls) and cluster.calls[-1].startswith(
        ("heal", "boot"))
    verdict = json.loads((folder.path / "verdict.json").read_text())
    assert verdict["valid"] == "unknown" and "KeyboardInterrupt" in verdict["results"][-1]["message"]


def test_mail_that_cannot_be_judged_is_the_sequences_failure_not_a_flaky_replay(tmp_path,
                                                                                monkeypatch) -> None:
    """A check_flow that raises (a Postfix a heal has just started, its queue unreadable for the
    whole drain time) is recorded as the sequence's no_mail_lost failure and written, and the cluster
    is still restored: Hypothesis's replay, which skips known-good steps, must not call it flaky."""
    import mailring.fuzz.session
    from mailring.checks import CheckError

    class Writer:
        prefix = "fuzz-test"

        def __init__(self, *args, **kwargs) -> None: ...

        def stop(self) -> list:
            return []

    def unreadable(*args, **kwargs):
        raise CheckError("the Postfix queue of mail02 could not be read for 60 s: postqueue -j on mail02")

    monkeypatch.setattr(mailring.fuzz.session, "FlowWriter", Writer)
    monkeypatch.setattr(mailring.fuzz.session, "check_flow", unreadable)
    cluster = SimCluster(RING)
    folder = RunFolder.create("fuzz", root=tmp_path / "runs")
    options = Options(mail=True, kinds=("crash", "isolate", "stop"), steps=2, seed=3, budget_s=60)
    verdict = fuzz(cluster, folder, options, Progress(plain=True))
    final = verdict["results"][-1]
    assert verdict["valid"] is False and final["check"] == "fuzz", verdict["results"]
    assert final["figures"]["check"] == "no_mail_lost"
    assert "the mail could not be judged: the Postfix queue of mail02 could not be read" in final["message"]
    assert cluster.out == {}  # healed and restored
