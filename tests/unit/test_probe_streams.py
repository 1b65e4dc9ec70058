"""probe.py's streaming kinds (timeline, writer) run as a subprocess against throwaway servers;
a timeline is stopped by closing its stdin, by a signal or by its own max_seconds."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest
from probe_servers import PROBE, Server, banner, http, smtp_server

from mailring.client import probe_request


# --- timeline ----------------------------------------------------------------------
def start_timeline(targets: list[dict], **kw: float) -> subprocess.Popen[str]:
    req = {"kind": "timeline", "targets": targets, "hz": 20, "max_seconds": 20, "timeout": 0.5,
           **kw}
    return subprocess.Popen([sys.executable, PROBE, probe_request(req)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], head: list[str]) -> list[dict]:
    """Read the rest of the probe's lines (it is bounded by max_seconds) and check its exit."""
    assert proc.stdout and proc.stderr
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    if proc.stdin and not proc.stdin.closed:
        proc.stdin.close()
    return [json.loads(line) for line in head + rest.splitlines()]


def test_timeline_until_stdin_closes(serve, refused_port: int) -> None:
    srv = serve(banner(b"220 test ESMTP\r\n"))
    proc = start_timeline([
        {"name": "up", "host": "127.0.0.1", "port": srv.port, "protocol": "smtp"},
        {"name": "down", "host": "127.0.0.1", "port": refused_port, "protocol": "smtp"},
    ])
    assert proc.stdin and proc.stdout
    head: list[str] = []
    while len(head) < 12 and (line := proc.stdout.readline()):
        head.append(line)
    proc.stdin.close()
    records = finish(proc, head)
    done, attempts = records[-1], records[:-1]
    assert done == {"done": True, "attempts": len(attempts)}
    assert len(attempts) >= 12
    by = {name: [a for a in attempts if a["target"] == name] for name in ("up", "down")}
    assert len(by["up"]) >= 5 and len(by["down"]) >= 5
    assert all(a["type"] == "ok" and a["banner"] == "220 test ESMTP" for a in by["up"])
    assert all(a["type"] == "fail" and "ConnectionRefused" in a["error"] for a in by["down"])
    assert all(a["t"] <= a["end"] for a in attempts)
    ts = [a["t"] for a in by["up"]]
    assert ts == sorted(ts) and len(ts) <= (ts[-1] - ts[0]) * 20 + 2  # paced at hz, no burst
    assert {a["local_port"] for a in by["up"]} <= set(srv.peers)


def test_timeline_stops_on_sigterm(serve) -> None:
    srv = serve(banner(b"* OK ready\r\n"))
    proc = start_timeline([{"name": "imap", "host": "127.0.0.1", "port": srv.port,
                            "protocol": "imap"}])
    assert proc.stdout
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    records = finish(proc, [first])
    assert records[-1] == {"done": True, "attempts": len(records) - 1}
    assert records[0]["type"] == "ok"


def test_timeline_stops_after_max_seconds(serve) -> None:
    srv = serve(http("200 OK"))
    proc = start_timeline([{"name": "web", "host": "127.0.0.1", "port": srv.port,
                            "protocol": "http"}], max_seconds=0.3)
    records = finish(proc, [])  # stdin stays open until it ended: only max_seconds ends it
    assert records[-1]["done"] is True and records[-1]["attempts"] >= 1
    assert all(re.match(r"HTTP/1\.0 200", r["banner"]) for r in records[:-1])


def test_timeline_target_with_its_own_rate(serve) -> None:
    srv = serve(banner(b"220 test ESMTP\r\n"))
    proc = start_timeline([
        {"name": "fast", "host": "127.0.0.1", "port": srv.port, "protocol": "smtp"},
        {"name": "slow", "host": "127.0.0.1", "port": srv.port, "protocol": "smtp", "hz": 2},
    ])
    assert proc.stdin and proc.stdout
    head: list[str] = []
    while len(head) < 30 and (line := proc.stdout.readline()):
        head.append(line)
    proc.stdin.close()
    attempts = finish(proc, head)[:-1]
    fast = [a for a in attempts if a["target"] == "fast"]
    slow = [a["t"] for a in attempts if a["target"] == "slow"]
    assert len(fast) >= 25 and 1 <= len(slow) <= (slow[-1] - slow[0]) * 2 + 2, (len(fast), slow)


# --- writer and mailbox ----------------------------------------------------------
def run_writer(**req: object) -> list[dict]:
    """A bounded writer run to its end; its lines, the done line last."""
    full = {"kind": "writer", "port": 25, "from": "a@x", "to": "b@x", "prefix": "run1", "domain": "c.x",
            "rate": 50, "count": 6, "max_seconds": 20, "timeout": 2, **req}
    proc = subprocess.Popen([sys.executable, PROBE, json.dumps(full)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout and proc.stderr and proc.stdin
    out = proc.stdout.read()  # stdin stays open: the writer ends on its own count
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return [json.loads(line) for line in out.splitlines()]


def test_writer_submits_numbered_messages_and_records_each_acceptance(serve) -> None:
    box: list[Server] = []
    srv = serve(smtp_server(box))
    box.append(srv)
    records = run_writer(hosts=["127.0.0.1"], port=srv.port, count=11)
    done, attempts = records[-1], sorted(records[:-1], key=lambda r: r["seq"])
    assert done == {"done": True, "attempts": 11}
    assert [a["seq"] for a in attempts] == list(range(11))
    assert {(a["outcome"], a["queue_id"], a["code"]) for a in attempts} == {("accepted", "4ABC123", 250)}
    assert [a["message_id"] for a in attempts] == [f"<run1.{i}@c.x>" for i in range(11)]
    seqs = sorted(int(m) for body in srv.received for m in re.findall(rb"X-Mailring-Seq: (\d+)\r\n", body))
    assert seqs == list(range(11))  # one message per number, sent with CRLF line ends
    ts = sorted(a["t"] for a in attempts)
    assert ts[-1] - ts[0] >= 0.1  # paced: the last is due 10 / 50 s after the first, not all at once


def test_writer_records_refusals_and_errors_with_where_they_happened(serve, refused_port: int) -> None:
    busy = serve(banner(b"554 5.3.2 not now\r\n"))
    records = run_writer(hosts=["127.0.0.1"], port=busy.port, count=2)[:-1]
    assert {(r["outcome"], r["code"], r["stage"]) for r in records} == {("refused", 554, "banner")}
    records = run_writer(hosts=["127.0.0.1"], port=refused_port, count=2)[:-1]
    assert {(r["outcome"], r["stage"]) for r in records} == {("error", "connect")}
    assert all("Refused" in r["error"] for r in records)


def test_writer_resolves_the_name_for_every_connection_in_the_resolvers_order(serve) -> None:
    import dns.message
    import dns.rrset

    box: list[Server] = []
    srv = serve(smtp_server(box))
    box.append(srv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    order = ["127.0.0.1", "127.0.0.3"]  # nothing listens on .3: those attempts are refused

    def answer() -> None:
        for n in range(4):
            data, peer = sock.recvfrom(4096)
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A",
                                                *(order if n % 2 == 0 else order[::-1])))
            sock.sendto(r.to_wire(want_shuffle=False), peer)

    threading.Thread(target=answer, daemon=True).start()
    try:
        records = run_writer(name="smtp.ring.test", port=srv.port, count=4, rate=5, workers=1,
                             dns_server="127.0.0.1", dns_port=sock.getsockname()[1])[:-1]
    finally:
        sock.close()
    assert [r["host"] for r in records] == ["127.0.0.1", "127.0.0.3"] * 2
    assert [r["outcome"] for r in records] == ["accepted", "error"] * 2


@pytest.mark.parametrize("bad", [{"hosts": ["h"], "name": "n"}, {}, {"rate": 0, "hosts": ["h"]},
                                 {"count": 10**6, "hosts": ["h"]}])
def test_writer_rejects_a_malformed_request(bad: dict) -> None:
    req = {"kind": "writer", "port": 25, "from": "a@x", "to": "b@x", "prefix": "p", **bad}
    res = subprocess.run([sys.executable, PROBE, json.dumps(req)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "bad request" in res.stderr


def test_a_probe_handle_stops_at_the_end_of_its_block_and_keeps_the_blocks_own_error() -> None:
    from mailring.client import Stopped

    class Failing(Stopped):
        stops = 0

        def stop(self) -> None:
            Failing.stops += 1
            raise RuntimeError("the probe's stop failed")

    with pytest.raises(RuntimeError, match="stop failed"), Failing():
        pass  # a clean block: the stop's failure is the error
    with pytest.raises(KeyError, match="the test's own"), Failing():
        raise KeyError("the test's own")
    assert Failing.stops == 2
