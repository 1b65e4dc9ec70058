"""probe.py's one-shot kinds run as a subprocess against throwaway servers (probe_servers.py)."""

from __future__ import annotations

import socket
import threading

import pytest
from probe_servers import Handler, Server, banner, http, imap_server, pop3_server, probe, smtp_server


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


def test_mailbox_lists_the_message_ids_of_every_user(serve) -> None:
    srv = serve(imap_server)
    users = [{"user": "alice", "password": "pw"}, {"user": "bob", "password": "pw"}]
    rc, out = probe({"kind": "mailbox", "host": "127.0.0.1", "port": srv.port, "users": users})
    assert rc == 0 and out["ok"], out
    assert out["mailboxes"] == {"alice": ["<m2@x>"], "bob": ["<m2@x>"]}
    rc, out = probe({"kind": "mailbox", "host": "127.0.0.1", "port": srv.port, "users": users, "match": "zz"})
    assert out["mailboxes"] == {"alice": [], "bob": []}


def test_forge_sends_the_header_then_its_bytes_and_reports_refusals(serve, refused_port: int) -> None:
    """A PROXY v1 header naming the forged address, then the target's bytes; a refused port
    is a result (how far the attempt got), not an error."""
    got: list[bytes] = []

    def handle(conn: socket.socket) -> None:
        data = b""
        while b"QUIT\r\n" not in data:
            data += conn.recv(1024)
        got.append(data)
        conn.sendall(b"221 bye\r\n")

    server = serve(handle)
    code, out = probe({"kind": "forge", "forged": "203.0.113.77", "targets": [
        {"name": "open", "host": "127.0.0.1", "port": server.port, "then": "QUIT\r\n", "timeout": 5},
        {"name": "shut", "host": "127.0.0.1", "port": refused_port, "timeout": 5}]})
    assert code == 0 and out["ok"], out
    opened, shut = out["results"]["open"], out["results"]["shut"]
    assert opened["connected"] and opened["sent"] and opened["reply"] == "221 bye\r\n", opened
    assert got == [f"PROXY TCP4 203.0.113.77 127.0.0.1 {opened['local_port']} {server.port}\r\n"
                   "QUIT\r\n".encode()]
    assert shut["refused"] and not shut["connected"] and not shut["sent"], shut


def test_forge_sends_the_header_after_a_greeting_or_after_the_wait(serve) -> None:
    got: list[bytes] = []

    def greeter(conn: socket.socket) -> None:
        conn.sendall(b"220 hello\r\n")
        got.append(conn.recv(1024))

    def silent(conn: socket.socket) -> None:
        got.append(conn.recv(1024))

    loud, quiet = serve(greeter), serve(silent)
    targets = [{"name": n, "host": "127.0.0.1", "port": s.port, "greeting_wait": 0.5, "timeout": 5}
               for n, s in (("loud", loud), ("quiet", quiet))]
    code, out = probe({"kind": "forge", "forged": "203.0.113.77", "targets": targets})
    assert code == 0, out
    assert out["results"]["loud"]["greeting"] == "220 hello\r\n" and out["results"]["loud"]["sent"]
    assert out["results"]["quiet"]["greeting"] == "" and out["results"]["quiet"]["sent"]
    assert all(g.startswith(b"PROXY TCP4 203.0.113.77 127.0.0.1 ") for g in got), got
