"""Judging a scenario's record: owners reached, outage per step against max_outage, samples, holders."""

from __future__ import annotations

from pathlib import Path

from test_scenario_load import GOOD, TOPOLOGY  # tests/unit is on sys.path (pytest's rootdir import)

from mailring.checks.holders import Sample
from mailring.client import Op
from mailring.scenario import load
from mailring.scenario.judge import (
    StepRun,
    judge,
    load_results,
    one_holder_results,
    outage_results,
    samples_results,
    step_handovers,
)

T0 = 1_700_000_000.0


def scenario(tmp_path: Path, text: str = GOOD):
    p = tmp_path / "s.yaml"
    p.write_text(text.replace("description:", "probes: {services: [smtp], targets: [192.168.56.101, "
                                              "192.168.56.103]}\ndescription:"))
    return load(p, TOPOLOGY)


def ops_with_outage(target: str, fail_from: float, fail_to: float, end: float = 30.0) -> list[Op]:
    return [Op(T0 + k / 20, T0 + k / 20 + 0.01, target, "fail" if fail_from <= k / 20 < fail_to else "ok")
            for k in range(int(end * 20))]


def test_max_outage_names_step_service_vip_and_figures(tmp_path):
    s = scenario(tmp_path)
    ops = ops_with_outage("smtp@192.168.56.101", 2.0, 5.5) + ops_with_outage("smtp@192.168.56.103", 0, 0)
    sr = StepRun(s.steps[0], T0 + 2.0, T0 + 2.1, T0 + 20, T0 + 5.0, "")
    [res] = outage_results(sr, ops, s)
    assert res.valid is True and res.vip == "192.168.56.101"
    assert res.figures == {"max_outage_ms": 4000, "windows": 1, "outage_ms": 3550, "failed_attempts": 70}
    tight = s.steps[0].__class__(**{**s.steps[0].__dict__, "max_outage": {"smtp": 0.001}})
    [res] = outage_results(StepRun(tight, T0 + 2.0, T0 + 2.1, T0 + 20, T0 + 5.0, ""), ops, s)
    assert res.valid is False
    assert res.message == "step 1 (crash mail01): smtp@192.168.56.101: outage 3550 ms > max_outage 1 ms"


def test_an_outage_that_never_ends_fails_and_one_before_the_step_does_not_count(tmp_path):
    s = scenario(tmp_path)
    ops = ops_with_outage("smtp@192.168.56.101", 25, 99) + ops_with_outage("smtp@192.168.56.103", 0.5, 1)
    [res] = outage_results(StepRun(s.steps[0], T0 + 2, T0 + 2.1, T0 + 30, None, ""), ops, s)
    assert res.valid is False and "never recovered" in res.message
    [res] = outage_results(StepRun(s.steps[0], T0 + 2, T0 + 2.1, T0 + 20, None, ""), ops, s)
    assert res.valid is True and res.figures["outage_ms"] == 0  # 101's is after the next step; 103's before


def test_owners_never_reached_fails_with_what_was_last_seen(tmp_path):
    s = scenario(tmp_path)
    ops = ops_with_outage("smtp@192.168.56.101", 0, 0) + ops_with_outage("smtp@192.168.56.103", 0, 0)
    runs = [StepRun(s.steps[0], T0 + 2, T0 + 2.1, T0 + 9, None, "VIP 192.168.56.101: expected owner "
                    "mail05, held by nobody"),
            StepRun(s.steps[1], T0 + 9, T0 + 9.5, T0 + 20, T0 + 12.5, "")]
    results = judge(s, runs, ops, [Sample(T0, {"192.168.56.101": ("mail01",)})])
    owners = [r for r in results if r.check == "owners"]
    assert owners[0].valid is False
    assert "last seen: VIP 192.168.56.101: expected owner mail05" in owners[0].message
    assert owners[1].valid is True and owners[1].figures == {"reached_ms": 3500}
    assert [r.check for r in results][-2:] == ["samples", "one_holder"]


def test_a_probe_that_saw_nothing_fails(tmp_path):
    s = scenario(tmp_path)
    [res] = samples_results(ops_with_outage("smtp@192.168.56.101", 0, 0), s)
    assert res.valid is False and "smtp@192.168.56.103 0" in res.message


def test_two_holders_pass_only_as_a_hand_over_the_model_foresees(tmp_path):
    s = scenario(tmp_path)  # step 1 crashes mail01 at +2 s, step 2 boots it at +9 s (returns at +9.5)
    runs = [StepRun(s.steps[0], T0 + 2, T0 + 2.1, T0 + 9, T0 + 5, ""),
            StepRun(s.steps[1], T0 + 9, T0 + 9.5, T0 + 20, T0 + 10, "")]
    allowed = step_handovers(s, runs)
    assert {(h.vip, h.nodes) for h in allowed if h.t == T0 + 9} == {
        ("192.168.56.101", frozenset({"mail05", "mail01"})),
        ("192.168.56.102", frozenset({"mail02", "mail01"}))}
    A = "192.168.56.101"

    def with_double(t: float, both: tuple[str, ...]) -> list[Sample]:
        return [Sample(T0, {A: ("mail01",)}), Sample(T0 + t, {A: both}), Sample(T0 + 19, {A: ("mail01",)})]

    [res] = one_holder_results(with_double(10.2, ("mail01", "mail05")), allowed)  # the failback hand-over
    assert res.valid is True and res.figures["forgiven_samples"] == 1
    [res] = one_holder_results(with_double(10.2, ("mail01", "mail03")), allowed)  # not its backup
    assert res.valid is False and res.vip == A
    assert res.message.startswith(f"split brain: VIP {A} held by mail01 and mail03 at once in 1 of 3")
    # mail01 took its VIP back at +10.2 s: a double 3 s after that is past the takeover's grace
    late = [Sample(T0 + 10.2, {A: ("mail01",)}), Sample(T0 + 13.5, {A: ("mail01", "mail05")})]
    [res] = one_holder_results(late, allowed)
    assert res.valid is False
    # mail01's CARP came back late: the first double is its takeover, forgiven; one past its grace is not
    [res] = one_holder_results(with_double(13.0, ("mail01", "mail05")), allowed)
    assert res.valid is True and res.figures["forgiven_samples"] == 1
    [res] = one_holder_results(with_double(13.0, ("mail01", "mail05"))[:2]
                               + [Sample(T0 + 16.5, {A: ("mail01", "mail05")})], allowed)
    assert res.valid is False and "from +16.50 s to +16.50 s" in res.message
    assert one_holder_results([], allowed)[0].valid == "unknown"


def test_no_mail_lost_carries_the_mail_flow_verdict(tmp_path):
    from mailring.checks.mailflow import ACCEPTED, Attempt
    from mailring.checks.mailflow import judge as judge_mail
    from mailring.scenario.judge import mail_results

    s = scenario(tmp_path, GOOD.replace("description:", "expect: {no_mail_lost: true}\ndescription:"))
    sent = [Attempt(i, f"<r.{i}@x>", 1.0 + i, 1.1 + i, ACCEPTED, node="mail01", queue_id=f"Q{i}")
            for i in range(3)]
    ok = mail_results(s, judge_mail(sent, {"<r.0@x>": 1, "<r.1@x>": 1, "<r.2@x>": 1}, prefix="r."))
    assert [(r.check, r.valid) for r in ok] == [("no_mail_lost", True)] and ok[0].figures["lost"] == 0
    bad = mail_results(s, judge_mail(sent, {"<r.0@x>": 1, "<r.2@x>": 2}, prefix="r."))[0]
    assert bad.valid is False and "lost (1): #1 <r.1@x>" in bad.message and "duplicated (1)" in bad.message
    assert mail_results(s, None)[0].valid == "unknown"
    assert mail_results(s, judge_mail([], {}, prefix="r."))[0].valid is False  # nothing accepted: no proof
    assert mail_results(scenario(tmp_path), None) == []  # not asked for


def test_max_load_fair_counts_the_heaviest_node_once_the_owners_are_reached(tmp_path):
    s = scenario(tmp_path, GOOD.replace("description:", "expect: {max_load: fair}\ndescription:"))
    assert s.steps[0].max_load == "fair" and s.load_bound(1) == 3  # ceil(10 VIPs / 4 nodes in CARP)
    owners = s.topology.expected_owners({"mail01"})
    settled = {v: (o,) for v, o in owners.items()}
    heavier = {**settled, "192.168.56.101": ("mail02",)}  # mail02 takes both of mail01's VIPs: 4
    sr = StepRun(s.steps[0], T0 + 2, T0 + 2.1, T0 + 9, T0 + 5, "")
    [ok] = load_results(sr, [Sample(T0 + 4, heavier), Sample(T0 + 5, settled)], s)  # before: not counted
    assert ok.valid is True and ok.figures["held"] == 3 and ok.figures["max_load"] == 3
    [bad] = load_results(sr, [Sample(T0 + 5, settled), Sample(T0 + 6, heavier)], s)
    assert bad.valid is False and bad.figures == {"max_load": 3, "held": 4, "node": "mail02",
                                                  "live_mail_nodes": 4}
    assert bad.message == "step 1 (crash mail01): mail02 held 4 VIPs +4.0 s after the step; max_load 3"
    assert load_results(sr, [Sample(T0 + 6, heavier)], scenario(tmp_path)) == []  # not asked for
