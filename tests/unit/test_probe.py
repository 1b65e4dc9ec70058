"""probe.py run as a subprocess against throwaway servers on 127.0.0.1 ephemeral ports.

Every server socket is listening before the probe starts, so no test waits for
readiness; the timeline is stopped by closing its stdin or by a signal.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailring.client import probe_request

PROBE = str(Path(__file__).resolve().parents[2] / "mailring" / "probe.py")
Handler = Callable[[socket.socket], None]


class Server:
    """Listens on 127.0.0.1:<ephemeral>; runs ``handler(conn)`` per connection in a thread."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[int] = []  # client source ports, in accept order
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[1])
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            try:
                self.handler(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handler: Handler) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but never listens: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def probe(req: dict | str) -> tuple[int, dict]:
    arg = req if isinstance(req, str) else probe_request(req)
    res = subprocess.run([sys.executable, PROBE, arg], capture_output=True, text=True, timeout=60)
    return res.returncode, json.loads(res.stdout)


def banner(payload: bytes) -> Handler:
    def handle(conn: socket.socket) -> None:
        conn.sendall(payload)
        while conn.recv(1024):  # until the probe closes
            pass
    return handle


def http(status: str) -> Handler:
    def handle(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(1024)
            if not chunk:
                return
            data += chunk
        conn.sendall(f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nServer: t\r\n"
                     "Content-Length: 5\r\n\r\nhello".encode())
    return handle


def lines(conn: socket.socket) -> Iterator[tuple[bytes, Callable[[str], None]]]:
    """(line, reply) pairs of a line protocol."""
    f = conn.makefile("rb")

    def reply(text: str) -> None:
        conn.sendall(text.encode())

    while line := f.readline():
        yield line.rstrip(b"\r\n"), reply


def smtp_server(server_box: list[Server]) -> Handler:
    def handle(conn: socket.socket) -> None:
        conn.sendall(b"220 test ESMTP\r\n")
        f = conn.makefile("rb")
        for line, reply in lines(conn):
            verb = line[:4].upper()
            if verb == b"EHLO":
                reply("250-test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT"):
                reply("250 2.1.0 Ok\r\n")
            elif verb == b"DATA":
                reply("354 End data with <CR><LF>.<CR><LF>\r\n")
                body = b""
                while (chunk := f.readline()) not in (b".\r\n", b""):
                    body += chunk
                server_box[0].received.append(body)
                reply("250 2.0.0 Ok: queued as 4ABC123\r\n")
            elif verb == b"QUIT":
                reply("221 2.0.0 Bye\r\n")
                return
            else:
                reply("502 5.5.2 Error: command not recognized\r\n")
    return handle


def pop3_server(conn: socket.socket) -> None:
    conn.sendall(b"+OK ready\r\n")
    for line, reply in lines(conn):
        verb, _, arg = line.decode().partition(" ")
        if verb == "PASS":
            reply("+OK logged in\r\n" if arg == "pw" else "-ERR [AUTH] failed\r\n")
        elif verb == "STAT":
            reply("+OK 2 320\r\n")
        elif verb in ("TOP", "RETR"):
            n = arg.split()[0]
            body = "" if verb == "TOP" else f"body {n}\r\n..dot-stuffed\r\n"
            reply(f"+OK\r\nMessage-ID: <m{n}@x>\r\nSubject: s\r\n\r\n{body}.\r\n")
        elif verb == "QUIT":
            reply("+OK bye\r\n")
            return
        else:
            reply("+OK\r\n")


def imap_server(conn: socket.socket) -> None:
    conn.sendall(b"* OK ready\r\n")
    for line, reply in lines(conn):
        tag, verb, args = (line.decode().split(" ", 2) + [""])[:3]
        verb = verb.upper()
        if verb == "CAPABILITY":
            reply(f"* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n")
        elif verb in ("SELECT", "EXAMINE"):
            reply(f"* 3 EXISTS\r\n* FLAGS ()\r\n{tag} OK [READ-ONLY] done\r\n")
        elif verb == "SEARCH":
            found = " 2" if '"hello world"' in args or '"<m2@x>"' in args else ""
            reply(f"* SEARCH{found}\r\n{tag} OK done\r\n")
        elif verb == "FETCH":
            raw = "Message-ID: <m2@x>\r\n\r\nbody 2\r\n"
            reply(f"* 2 FETCH (BODY[] {{{len(raw)}}}\r\n{raw})\r\n{tag} OK done\r\n")
        elif verb == "LOGOUT":
            reply(f"* BYE\r\n{tag} OK done\r\n")
            return
        else:
            reply(f"{tag} OK done\r\n")


# --- banner --------------------------------------------------------------------
@pytest.mark.parametrize(("protocol", "handler", "ok"), [
    ("smtp", banner(b"220 test ESMTP\r\n"), True),
    ("smtp", banner(b"554 5.3.2 not now\r\n"), False),
    ("pop3", banner(b"+OK ready\r\n"), True),
    ("pop3", banner(b"-ERR busy\r\n"), False),
    ("imap", banner(b"* OK ready\r\n"), True),
    ("imap", banner(b"* BYE shutting down\r\n"), False),
    ("http", http("200 OK"), True),
    ("http", http("503 Service Unavailable"), False),
    ("smtp", lambda conn: None, False),  # accepts, then closes without a word
])
def test_banner_classification(serve, protocol: str, handler: Handler, ok: bool) -> None:
    srv = serve(handler)
    rc, out = probe({"kind": "banner", "host": "127.0.0.1", "port": srv.port,
                     "protocol": protocol, "timeout": 3})
    assert rc == 0
    assert out["ok"] is ok, out
    assert out["local_port"] == srv.peers[0]
    assert out["elapsed"] >= 0
    if not ok:
        assert out["error"]


def test_connection_refused_is_a_result(refused_port: int) -> None:
    for kind in ("banner", "smtp", "pop3", "imap", "http"):
        rc, out = probe({"kind": kind, "host": "127.0.0.1", "port": refused_port,
                         "protocol": "smtp", "user": "u", "password": "p", "timeout": 2})
        assert rc == 0 and out["ok"] is False, out
        assert out["error"].startswith("ConnectionRefusedError: "), out


@pytest.mark.parametrize("arg", [
    "not json", "[1, 2]", '{"kind": "nope"}', '{"kind": "banner", "host": "127.0.0.1"}',
    '{"kind": "banner", "host": "127.0.0.1", "port": 25, "protocol": "gopher"}',
    '{"kind": "smtp", "host": "127.0.0.1", "port": "25"}',
    '{"kind": "timeline", "targets": []}',
])
def test_malformed_request_exits_2(arg: str) -> None:
    rc, out = probe(arg)
    assert rc == 2 and out["ok"] is False and out["error"].startswith("bad request: ")


# --- protocols -------------------------------------------------------------------
def test_smtp_send_reports_data_reply_and_queue_id(serve) -> None:
    box: list[Server] = []
    box.append(serve(smtp_server(box)))
    rc, out = probe({"kind": "smtp", "host": "127.0.0.1", "port": box[0].port,
                     "ehlo": "client01.ring.test", "source": "127.0.0.1",
                     "send": {"from": "alice@ring.test", "to": "bob@ring.test",
                              "subject": "probe 1", "body": "hi\n"}})
    assert rc == 0 and out["ok"] is True, out
    assert (out["banner_code"], out["banner"], out["ehlo_code"]) == (220, "test ESMTP", 250)
    assert out["features"] == ["PIPELINING", "8BITMIME"]
    assert (out["data_code"], out["queue_id"]) == (250, "4ABC123")
    assert out["local_port"] == box[0].peers[0]
    assert b"Subject: probe 1" in box[0].received[0]


def test_smtp_login_unsupported_fails(serve) -> None:
    box: list[Server] = []
    box.append(serve(smtp_server(box)))
    rc, out = probe({"kind": "smtp", "host": "127.0.0.1", "port": box[0].port,
                     "login": {"user": "alice", "password": "x"}})
    assert rc == 0 and out["ok"] is False and out["login_ok"] is False
    assert "AUTH" in out["error"]


@pytest.mark.parametrize(("password", "ok"), [("pw", True), ("bad", False)])
def test_pop3(serve, password: str, ok: bool) -> None:
    srv = serve(pop3_server)
    rc, out = probe({"kind": "pop3", "host": "127.0.0.1", "port": srv.port, "user": "alice",
                     "password": password})
    assert rc == 0 and out["ok"] is ok and out["banner"] == "+OK ready", out
    if ok:
        assert (out["count"], out["size"], out["login_ok"]) == (2, 320, True)
    else:
        assert out["login_ok"] is False and "auth" in out["error"].lower()


def test_pop3_retrieves_only_the_message_with_the_message_id(serve) -> None:
    srv = serve(pop3_server)
    rc, out = probe({"kind": "pop3", "host": "127.0.0.1", "port": srv.port, "user": "alice",
                     "password": "pw", "message_id": "<m2@x>"})
    assert rc == 0 and out["ok"], out
    assert out["bodies"] == ["body 2\n.dot-stuffed\n"]


def test_imap_fetches_the_message_with_the_message_id(serve) -> None:
    srv = serve(imap_server)
    for mid, bodies in (("<m2@x>", ["body 2\n"]), ("<m9@x>", [])):
        rc, out = probe({"kind": "imap", "host": "127.0.0.1", "port": srv.port, "user": "alice",
                         "password": "pw", "message_id": mid})
        assert rc == 0 and out["ok"] and out["bodies"] == bodies, out


@pytest.mark.parametrize(("subject", "found"), [("hello world", True), ("other", False)])
def test_imap_select_and_search(serve, subject: str, found: bool) -> None:
    srv = serve(imap_server)
    rc, out = probe({"kind": "imap", "host": "127.0.0.1", "port": srv.port, "user": "alice",
                     "password": "pw", "search_subject": subject})
    assert rc == 0 and out["ok"] is True, out
    assert (out["banner"], out["exists"], out["found"]) == ("* OK ready", 3, found)
    assert out["matches"] == (1 if found else 0)


def test_http(serve) -> None:
    srv = serve(http("200 OK"))
    rc, out = probe({"kind": "http", "host": "127.0.0.1", "port": srv.port, "path": "/"})
    assert rc == 0 and out["ok"] is True, out
    assert (out["status"], out["body"], out["headers"]["server"]) == (200, "hello", "t")
    assert out["local_port"] == srv.peers[0]


def test_dns_fresh_queries_in_answer_order() -> None:
    import dns.message
    import dns.rrset

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    addrs = ["192.168.56.101", "192.168.56.102"]

    def answer() -> None:
        for n in range(3):
            data, peer = sock.recvfrom(4096)
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            name = q.question[0].name
            if name.to_text() == "mail.ring.test.":
                order = addrs if n % 2 == 0 else addrs[::-1]
                r.answer.append(dns.rrset.from_text(name, 30, "IN", "A", *order))
            sock.sendto(r.to_wire(want_shuffle=False), peer)  # keep our order

    threading.Thread(target=answer, daemon=True).start()
    try:
        req = {"kind": "dns", "name": "mail.ring.test", "server": "127.0.0.1",
               "port": sock.getsockname()[1], "count": 2, "timeout": 3}
        rc, out = probe(req)
        assert rc == 0 and out["ok"] is True, out
        assert [a["addresses"] for a in out["answers"]] == [addrs, addrs[::-1]]
        assert [a["ttl"] for a in out["answers"]] == [30, 30]
        rc, out = probe(dict(req, name="empty.ring.test", count=1))
        assert rc == 0 and out["ok"] is False and "empty answer" in out["error"]
    finally:
        sock.close()


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


def test_mailbox_lists_the_message_ids_of_every_user(serve) -> None:
    srv = serve(imap_server)
    users = [{"user": "alice", "password": "pw"}, {"user": "bob", "password": "pw"}]
    rc, out = probe({"kind": "mailbox", "host": "127.0.0.1", "port": srv.port, "users": users})
    assert rc == 0 and out["ok"], out
    assert out["mailboxes"] == {"alice": ["<m2@x>"], "bob": ["<m2@x>"]}
    rc, out = probe({"kind": "mailbox", "host": "127.0.0.1", "port": srv.port, "users": users, "match": "zz"})
    assert out["mailboxes"] == {"alice": [], "bob": []}
