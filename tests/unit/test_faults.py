"""The fault-kind registry: verbs, inverses, per-OS rules and driver support all derive from it."""

from __future__ import annotations

import pytest

from mailring import faults
from mailring.cli.main import parser
from mailring.cluster import Cluster, driver_class
from mailring.errors import InputError
from mailring.nemesis import Nemesis
from tests.unit.recorder import Recorder

CONTRACT_VERBS = {"crash", "boot", "stop", "start", "isolate", "heal", "drain", "ready"}


def test_every_kind_and_inverse_is_a_cli_verb_and_the_old_verbs_stay() -> None:
    sub = next(a for a in parser()._actions if a.dest == "command")
    verbs = set(faults.verbs())
    assert CONTRACT_VERBS <= verbs
    assert verbs <= set(sub.choices)
    for kind in faults.KINDS.values():
        assert {kind.name, kind.inverse} <= verbs


def test_a_clashing_verb_or_state_is_refused() -> None:
    crash = faults.KINDS["crash"]
    with pytest.raises(ValueError, match="already used by 'crash'"):
        faults.register(faults.FaultKind("zap", "boot", "zap", "unzap", "", "", "", ""))
    with pytest.raises(ValueError, match="node state 'crashed'"):
        faults.register(faults.FaultKind("zap", "unzap", "zap", "unzap", "", "", "", "",
                                         state=crash.state))
    assert "zap" not in faults.KINDS


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="unknown fault kind 'explode'; use one of: .*crash"):
        faults.kind("explode")


def test_carp_failed_follows_the_recorded_states_and_the_os_rule(monkeypatch) -> None:
    assert faults.carp_failed({"mail01": "crashed", "mail02": "isolated"}, "debian") == {"mail01", "mail02"}
    assert faults.carp_failed({"mail03": "on fire"}, "debian") == {"mail03"}  # unknown: assume down
    frozen = faults.FaultKind("freeze", "thaw", "freeze", "thaw", "", "", "frozen", "thawed",
                              takes_out=faults.CARP, by_os={"freebsd": faults.HAPROXY}, state="frozen")
    monkeypatch.setitem(faults.KINDS, "freeze", frozen)
    assert faults.carp_failed({"mail04": "frozen"}, "debian") == {"mail04"}
    assert faults.carp_failed({"mail04": "frozen"}, "freebsd") == set()


def test_a_daemon_target_takes_out_only_itself_but_carp_takes_the_node_out() -> None:
    stop = faults.KINDS["stop"]
    assert stop.out_of("debian", ("postfix",)) == faults.HAPROXY
    assert stop.out_of("freebsd", ("carp",)) == faults.CARP
    assert faults.KINDS["drain"].scope(()) == "service" and faults.KINDS["crash"].scope(()) == "node"


def test_supports_reads_the_primitives_a_driver_implements() -> None:
    class NoIsolation(Recorder):
        isolate = Cluster.isolate  # the abstract one: this driver cannot cut a link

    assert Recorder.supports("isolate") and not NoIsolation.supports("isolate")
    assert NoIsolation.supports("crash")
    for name in ("lab", "vagrant"):
        for kind in ("crash", "isolate", "stop", "drain", "maint"):
            assert driver_class(name).supports(kind), (name, kind)


def test_nemesis_refuses_a_fault_the_driver_lacks_before_doing_anything() -> None:
    class NoIsolation(Recorder):
        isolate = Cluster.isolate

    NoIsolation.__abstractmethods__ = frozenset()  # instantiate it anyway, to reach apply()
    c = NoIsolation()
    with pytest.raises(InputError, match="recorder driver cannot isolate: it lacks isolate"):
        Nemesis(c).isolate("mail01")
    assert c.calls == []


def test_a_whole_node_fault_excludes_others_on_that_node_both_ways() -> None:
    nem = Nemesis(Recorder())
    nem.stop("mail01", "postfix")
    with pytest.raises(RuntimeError, match="already disrupting mail01/postfix"):
        nem.crash("mail01")  # the stopped daemon's fault must be undone first
    nem.isolate("mail01")  # isolation keeps processes running: a stop beside it is fine
    nem.drain("mail01", "imap")
    with pytest.raises(RuntimeError, match="already disrupting mail01/haproxy-servers"):
        nem.drain("mail01", "pop3", state="maint")


def test_targets_are_checked_against_the_kind() -> None:
    c = Recorder()
    with pytest.raises(InputError, match="stop needs a daemon"):
        c.apply_fault("stop", "mail01")
    with pytest.raises(InputError, match="crash takes a node only"):
        c.apply_fault("crash", "mail01", "postfix")
    with pytest.raises(InputError, match="unknown daemon 'smtp'"):
        c.apply_fault("stop", "mail01", "smtp")  # a service, not a daemon
    with pytest.raises(InputError, match="unknown node 'mail99'"):
        c.apply_fault("crash", "mail99")
    assert c.calls == []


def test_hang_is_a_registry_kind_with_a_per_os_carp_rule() -> None:
    hang = faults.kind("hang")
    assert (hang.inverse, hang.state, hang.takes) == ("resume", "hung", "daemon")
    assert faults.carp_failed({"mail02": "hung"}, "debian") == {"mail02"}  # ucarp hangs too
    assert faults.carp_failed({"mail02": "hung"}, "freebsd") == set()  # kernel CARP advertises on
    assert hang.out_of("debian", ("postfix",)) == faults.HAPROXY


def test_nemesis_hangs_a_node_or_one_daemon_through_the_cluster() -> None:
    c = Recorder()
    with Nemesis(c) as nem:
        nem.inflict("hang", "mail01")
        assert c.faults() == {"mail01": "hung"} and c.carp_failed() == {"mail01"}
        with pytest.raises(RuntimeError, match="already disrupting mail01"):
            nem.stop("mail01", "postfix")
        nem.inflict("hang", "mail02", "postfix")
        assert "mail02" not in c.faults()  # one daemon: the node is not hung
    assert c.calls == [("freeze", "mail01", None), ("freeze", "mail02", "postfix"),
                       ("thaw", "mail02", "postfix"), ("thaw", "mail01", None)]
    assert c.faults() == {}


def test_an_optional_primitive_a_driver_lacks_refuses_the_kind_with_one_line(capsys) -> None:
    class NoFreeze(Recorder):
        freeze = Cluster.freeze
        thaw = Cluster.thaw

    assert Recorder.supports("hang") and not NoFreeze.supports("hang")
    with pytest.raises(InputError, match="recorder driver cannot hang: it lacks freeze, thaw"):
        NoFreeze().apply_fault("hang", "mail01")
    for name in ("lab", "vagrant"):
        assert driver_class(name).supports("hang") == driver_class(name).supports_primitive("freeze")


def test_every_shipped_scenario_step_drives_the_nemesis_through_the_registry() -> None:
    from pathlib import Path

    from mailring.scenario import load
    from mailring.scenario.run import make_fault, supported

    shipped = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "scenarios").glob("*.yaml"))
    assert shipped
    for path in shipped:
        scenario = load(path)
        c = Recorder()
        supported(c, scenario)
        nem, active = Nemesis(c), {}
        for step in scenario.steps:
            if step.verb.undoes:
                nem.heal(active.pop(step.target))
            else:
                active[step.target] = nem.apply(make_fault(step))
        nem.heal_all()
        kinds = {s.verb.kind for s in scenario.steps}
        methods = {faults.kind(k).method for k in kinds} | {faults.kind(k).inverse_method for k in kinds}
        methods |= {p for k in kinds for p in faults.kind(k).needs}  # hang: freeze, thaw
        called = {call[0] for call in c.calls}
        assert called <= methods | {"haproxy_command"} and called, (path.name, c.calls)
