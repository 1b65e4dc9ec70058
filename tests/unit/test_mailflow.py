"""judge(): every attempted message sorted by what became of it, and the verdict names them."""

from __future__ import annotations

import pytest

from mailring.checks.mailflow import ACCEPTED, ERROR, REFUSED, Attempt, judge

RUN = "mailring-flow-t1"


def att(seq: int, outcome: str = ACCEPTED, node: str = "mail01", **kw) -> Attempt:
    queue_id = kw.pop("queue_id", f"Q{seq}" if outcome == ACCEPTED else None)
    return Attempt(seq, f"<{RUN}.{seq}@ring.test>", 100.0 + seq, 100.1 + seq, outcome, host="192.168.56.101",
                   node=node, queue_id=queue_id, **kw)


def mid(seq: int) -> str:
    return f"<{RUN}.{seq}@ring.test>"


def test_every_accepted_message_delivered_once_is_valid() -> None:
    v = judge([att(i) for i in range(5)], {mid(i): 1 for i in range(5)}, prefix=RUN)
    assert v.valid and len(v.delivered_once) == 5
    assert v.summary().startswith("5 attempts, 5 delivered once, 0 lost, 0 duplicated")


def test_accepted_but_never_delivered_is_lost_and_named() -> None:
    v = judge([att(0), att(1, node="mail02"), att(2)], {mid(0): 1, mid(2): 1}, prefix=RUN)
    assert not v.valid and [a.seq for a in v.lost] == [1]
    assert f"lost (1): #1 {mid(1)} (queued as Q1 on mail02 via 192.168.56.101)" in v.explain()


def test_two_copies_are_a_duplicate_whatever_the_outcome() -> None:
    v = judge([att(0), att(1, ERROR, stage="data", error="timeout")], {mid(0): 2, mid(1): 2}, prefix=RUN)
    assert not v.valid and [(a.seq, n) for a, n in v.duplicated] == [(0, 2), (1, 2)]
    assert f"#0 {mid(0)} (queued as Q0 on mail01 via 192.168.56.101) x2" in v.explain()


def test_refusals_and_errors_are_allowed_either_way() -> None:
    history = [att(0, REFUSED, code=451, stage="rcpt"), att(1, ERROR, stage="data", error="reset"),
               att(2, ERROR, stage="connect", error="timeout")]
    v = judge(history, {mid(1): 1}, prefix=RUN)
    assert v.valid and [a.seq for a in v.refused] == [0] and [a.seq for a in v.unacknowledged] == [1, 2]


def test_a_refused_message_that_was_delivered_is_invalid() -> None:
    v = judge([att(0, REFUSED, code=451, stage="data")], {mid(0): 1}, prefix=RUN)
    assert not v.valid and [a.seq for a in v.refused_but_delivered] == [0]


def test_undelivered_mail_in_a_queue_or_on_a_down_node_is_held_not_lost() -> None:
    history = [att(0, node="mail01"), att(1, node="mail03")]
    queued = {("mail01", "Q0"): "mail01 deferred", ("mail02", "Q1"): "another message, on mail02"}
    v = judge(history, {}, down={"mail03"}, queued=queued, prefix=RUN)
    assert v.valid and not v.lost
    assert [(a.seq, w) for a, w in v.held] == [(0, "mail01 deferred"), (1, "mail03 (down)")]
    v = judge(history, {}, queued=queued, prefix=RUN)  # mail03 up again, Q1 not in its queue: lost
    assert not v.valid and [a.seq for a in v.lost] == [1]


def test_a_message_of_this_run_that_nobody_sent_is_unexpected() -> None:
    v = judge([att(0)], {mid(0): 1, mid(7): 1, "<other@x>": 1}, prefix=RUN)
    assert not v.valid and v.unexpected == [mid(7)]


def test_a_history_repeating_a_sequence_number_is_refused() -> None:
    with pytest.raises(ValueError, match="repeats a sequence number: 3"):
        judge([att(3), att(3)], {})


def test_the_explanation_names_at_most_a_dozen_and_counts_the_rest() -> None:
    v = judge([att(i) for i in range(20)], {}, prefix=RUN)
    lost = v.explain().splitlines()[1]
    assert lost.startswith("lost (20): #0 ") and lost.endswith("and 8 more")


def test_writer_lines_become_attempts_with_the_answering_node() -> None:
    import json

    from mailring.client import ProbeError
    from mailring.mailflow import accepted_on, parse_attempts
    from mailring.topology import DEFAULT_TOPOLOGY, load

    topo = load(DEFAULT_TOPOLOGY)
    lines = [{"seq": 0, "message_id": mid(0), "t": 1.0, "end": 1.1, "outcome": "accepted",
              "host": "192.168.56.103", "banner": "mail02.ring.test ESMTP mail02", "queue_id": "4ABC",
              "code": 250, "stage": "done"},
             {"seq": 1, "message_id": mid(1), "t": 2.0, "end": 3.0, "outcome": "error",
              "host": "192.168.56.101", "stage": "connect", "error": "TimeoutError: timed out"}]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    done = text + json.dumps({"done": True, "attempts": 2}) + "\n"
    got = parse_attempts(topo, "client01", done)
    assert [(a.seq, a.node, a.queue_id, a.outcome) for a in got] == [(0, "mail02", "4ABC", ACCEPTED),
                                                                       (1, None, None, ERROR)]
    assert accepted_on(got, "mail02") == got[:1] and accepted_on(got, other_than="mail02") == []
    assert len(parse_attempts(topo, "client01", text + '{"seq": 2', partial=True)) == 2  # a half line waits
    with pytest.raises(ProbeError, match="without its done line"):
        parse_attempts(topo, "client01", text)


class QueueReads:
    """A cluster stand-in for wait_drained: ``postqueue -j`` fails on mail02 for the first
    ``failures`` reads (its Postfix just started by a heal), every queue empty otherwise."""

    def __init__(self, failures: int) -> None:
        from types import SimpleNamespace

        from mailring.topology import DEFAULT_TOPOLOGY, load
        self.topology = load(DEFAULT_TOPOLOGY)
        self.failures = failures
        self.reads = 0
        up = SimpleNamespace(state="up")
        self._status = SimpleNamespace(nodes={n: up for n in self.topology.nodes})

    def status(self):
        return self._status

    def run(self, node: str, argv: list[str], timeout: float = 60.0):
        from mailring.cluster import Result
        assert argv == ["postqueue", "-j"]
        if node == "mail02":
            self.reads += 1
            if self.reads <= self.failures:
                return Result(argv, 69, "", "postqueue: fatal: mail system is down")
        return Result(argv, 0, "", "")


def test_a_queue_unreadable_while_postfix_starts_is_waited_for() -> None:
    from mailring.mailflow import wait_drained
    cluster = QueueReads(failures=3)
    assert wait_drained(cluster, deadline_s=10) == {}
    assert cluster.reads == 4


def test_a_queue_that_stays_unreadable_is_an_error_naming_the_node() -> None:
    from mailring.checks import CheckError
    from mailring.mailflow import wait_drained
    with pytest.raises(CheckError, match=r"the Postfix queue of mail02 could not be read for 0.5 s: "
                                         r"postqueue -j on mail02"):
        wait_drained(QueueReads(failures=10**6), deadline_s=0.5)
