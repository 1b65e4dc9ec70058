"""The nemesis: faults heal in reverse order, never twice, and never double-fault a target."""

from __future__ import annotations

import pytest

from mailring.nemesis import Fault, Nemesis
from mailring.runs.outages import Outage, OutageLog, merge, table
from tests.unit.recorder import Recorder


def test_faults_heal_in_reverse_order() -> None:
    c = Recorder()
    with Nemesis(c) as nem:  # type: ignore[arg-type]
        nem.crash("mail01")
        nem.stop("mail02", "postfix")
    assert c.calls == [("crash", "mail01"), ("stop_daemon", "mail02", "postfix"),
                       ("start_daemon", "mail02", "postfix"), ("boot", "mail01")]


def test_double_fault_on_one_target_is_refused() -> None:
    nem = Nemesis(Recorder())
    nem.crash("mail01")
    with pytest.raises(RuntimeError, match="already disrupting mail01"):
        nem.crash("mail01")
    with pytest.raises(RuntimeError, match="already disrupting"):
        nem.stop("mail01", "postfix")  # a crashed node has no service to stop
    nem.stop("mail02", "postfix")  # another target is fine


def test_heal_all_keeps_going_and_reports_errors() -> None:
    c = Recorder()
    nem = Nemesis(c)
    nem.apply(Fault("crash", "mail01"))
    nem.apply(Fault("stop", "mail02", ("dovecot",)))
    c.fail_on = "start_daemon"
    errors = nem.heal_all()
    assert errors and "dovecot" in errors[0]
    assert ("boot", "mail01") in c.calls and not nem.active


def test_where_the_driver_allows_nodes_heal_side_by_side_and_each_node_in_reverse_order() -> None:
    """Three crashed servers boot at once (each boot waits for the others to have begun), and a
    node's own faults still heal newest first."""
    import threading

    started = threading.Barrier(3, timeout=5)

    class Parallel(Recorder):
        HEALS_IN_PARALLEL = True

        def boot(self, node):
            started.wait()  # a heal in turn would wait here for good: BrokenBarrierError
            super().boot(node)

    c = Parallel()
    nem = Nemesis(c)
    for node in ("mail01", "mail02", "mail03"):
        nem.crash(node)
    nem.stop("mail04", "postfix")
    nem.stop("mail04", "dovecot")
    assert nem.heal_all() == [] and not nem.active
    assert sorted(call for call in c.calls if call[0] == "boot") == [
        ("boot", "mail01"), ("boot", "mail02"), ("boot", "mail03")]
    starts = [call[2] for call in c.calls if call[0] == "start_daemon"]
    assert starts == ["dovecot", "postfix"]


def test_a_driver_that_heals_in_turn_heals_newest_first() -> None:
    c = Recorder()
    nem = Nemesis(c)
    for node in ("mail01", "mail02", "mail03"):
        nem.crash(node)
    assert nem.heal_all() == []
    assert [call for call in c.calls if call[0] == "boot"] == [
        ("boot", "mail03"), ("boot", "mail02"), ("boot", "mail01")]


def test_heal_of_a_fault_not_started_is_an_error() -> None:
    nem = Nemesis(Recorder())
    with pytest.raises(RuntimeError, match="not started"):
        nem.heal(Fault("crash", "mail03"))


def test_drain_uses_the_runtime_api_per_service() -> None:
    c = Recorder()
    nem = Nemesis(c)
    fault = nem.drain("mail03", "imap", "pop3")
    nem.heal(fault)
    sent = [call[2] for call in c.calls if call[0] == "haproxy_command"]
    assert sent == ["set server be_imap/mail03 state drain", "set server be_pop3/mail03 state drain",
                    "set server be_imap/mail03 state ready", "set server be_pop3/mail03 state ready"]


def test_bad_server_state_or_service_is_input_error() -> None:
    from mailring.errors import InputError

    with pytest.raises(InputError, match="state"):
        Recorder().set_server_state("mail01", ("imap",), "sleep")
    with pytest.raises(InputError, match="unknown service"):
        Recorder().set_server_state("mail01", ("nntp",), "drain")
    with pytest.raises(InputError, match="unknown fault kind 'sleep'"):
        Nemesis(Recorder()).drain("mail01", "imap", state="sleep")
    with pytest.raises(InputError, match="unknown service 'nntp'"):
        Nemesis(Recorder()).drain("mail01", "nntp")


def test_outage_log_saves_merges_and_prints(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    log = OutageLog()
    log.record(Outage("t", "crash mail01", "192.168.56.101", "smtp", 3900.0, 3078.0, 70))
    log.record(Outage("t", "crash mail01", "192.168.56.102", "imap", None, 3078.0, 200))
    assert log.save(tmp_path).name == "outages-gw1.json"
    rows = merge(tmp_path)
    assert (tmp_path / "outages.json").exists() and len(rows) == 2
    assert rows[0].ratio == pytest.approx(3900 / 3078)
    text = table(rows)
    assert "3900" in text and "never recovered" in text and "1.27" in text


def test_a_fault_that_fails_half_way_is_still_healed() -> None:
    c = Recorder()
    nem = Nemesis(c)  # type: ignore[arg-type]
    c.fail_on = "crash"  # e.g. the node died, but its link could not be taken down
    with pytest.raises(RuntimeError, match="crash failed"):
        nem.crash("mail01")
    c.fail_on = None
    assert nem.heal_all() == [] and c.calls[-1] == ("boot", "mail01") and not nem.active
