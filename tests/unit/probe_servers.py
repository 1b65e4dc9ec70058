"""Throwaway servers on 127.0.0.1 ephemeral ports for probe.py's tests, and how to run the probe.

Every server socket is listening before the probe starts, so no test waits for readiness.
The handlers speak just enough SMTP, POP3, IMAP and HTTP for the probe's kinds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

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
