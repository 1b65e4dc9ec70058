"""The client's point of view: one standalone probe run ON the client node.

Invoked as ``python3 probe.py '<json request>'``; prints one JSON object (or, for
``timeline``, ``hold``, ``writer`` and ``adverts``, JSON lines). Exit 0 whenever the request
was understood, even when the probed service failed (``{"ok": false, "error": ...}``); exit 2 only
for a malformed request. ``python3 probe.py --serve`` is the same probe as an agent kept
running for a whole test session: one-shot requests in as JSON lines on stdin, results out
as JSON lines on stdout, matched by ``id`` (see ``serve``). It is copied to FreeBSD VMs
and run in lab namespaces, so it imports only the stdlib (and dnspython, lazily, for ``dns`` and a writer
by name) and never anything from ``mailring``. Every network call has a
timeout. What each protocol's greeting looks like comes with the request
(``"protocols"``: ``{name: {"greeting": regex, "quit": text}}``, from
``mailring.protocols``), so this file holds no protocol table of its own.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import http.client
import imaplib
import json
import os
import poplib
import re
import signal
import smtplib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

MAX_TARGETS, MAX_HZ, MAX_SECONDS, MAX_COUNT = 64, 200.0, 3600.0, 1000
MAX_SWEEP = 1024


class BadRequest(ValueError):
    """The request itself is malformed (exit 2)."""


def err(e: BaseException) -> str:
    return type(e).__name__ + ": " + str(e)


def need(req: dict, key: str, kind: type | tuple, default: Any = ...) -> Any:
    if key not in req or req[key] is None:
        if default is ...:
            raise BadRequest(f"field {key!r} is required")
        return default
    value = req[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"field {key!r} has the wrong type: {value!r}")
    return value


def endpoint(req: dict) -> tuple[str, int, float]:
    port = need(req, "port", int)
    if not 0 < port < 65536:
        raise BadRequest(f"port {port} out of range")
    timeout = float(need(req, "timeout", (int, float), 5.0))
    if not 0 < timeout <= MAX_SECONDS:
        raise BadRequest(f"timeout {timeout} out of range")
    return need(req, "host", str), port, timeout


def no_source(req: dict) -> None:
    if req.get("source"):
        raise BadRequest(f"{req.get('kind')}: source is supported for smtp, http and banner only")


def source_of(req: dict) -> tuple[str, int] | None:
    src = need(req, "source", str, None)
    return (src, 0) if src else None


_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def tls_context(req: dict) -> ssl.SSLContext:
    """System trust store; the name verified is ``tls_name`` (if given), else the host."""
    key = (need(req, "cafile", str, None), need(req, "tls_name", str, None))
    if key not in _CONTEXTS:  # loading the trust store is slow; a timeline reuses it
        _CONTEXTS[key] = _new_context(*key)
    return _CONTEXTS[key]


def _new_context(cafile: str | None, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if name:
        wrap = ctx.wrap_socket

        def wrap_named(sock: socket.socket, *a: Any, server_hostname: Any = None, **kw: Any) -> Any:
            return wrap(sock, *a, server_hostname=name, **kw)

        ctx.wrap_socket = wrap_named  # type: ignore[method-assign]
    return ctx


def port_of(sock: Any) -> int | None:
    try:
        return sock.getsockname()[1]
    except (OSError, AttributeError):
        return None


def text(b: bytes | str) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


# --- kinds ---------------------------------------------------------------
def probe_dns(req: dict, out: dict) -> None:
    import dns.resolver

    name, rdtype = need(req, "name", str), need(req, "rdtype", str, "A")
    count = need(req, "count", int, 1)
    if not 0 < count <= MAX_COUNT:
        raise BadRequest(f"count must be 1..{MAX_COUNT}")
    server, timeout = need(req, "server", str, None), float(need(req, "timeout", (int, float), 3.0))
    res = dns.resolver.Resolver(configure=server is None)  # no server: /etc/resolv.conf
    if server:
        res.nameservers, res.port = [server], need(req, "port", int, 53)
    res.cache, res.timeout, res.lifetime = None, timeout, timeout
    out["server"] = server or (res.nameservers[0] if res.nameservers else None)
    answers: list[dict] = []
    for _ in range(count):
        entry: dict[str, Any] = {"addresses": [], "ttl": None}
        began = time.monotonic()
        try:
            ans = res.resolve(name, rdtype, search=False, raise_on_no_answer=False)
            if ans.rrset is not None:
                entry["ttl"] = ans.rrset.ttl
                entry["addresses"] = [getattr(r, "address", None) or r.to_text() for r in ans.rrset]
            if not entry["addresses"]:
                entry["error"] = f"empty answer for {name} {rdtype}"
        except Exception as e:  # noqa: BLE001 - every failure is reported as text
            entry["error"] = err(e)
        entry["elapsed"] = round(time.monotonic() - began, 6)
        answers.append(entry)
    out["answers"] = answers
    errors = [a["error"] for a in answers if "error" in a]
    out["ok"] = not errors
    if errors:
        out["error"] = errors[0]


def probe_smtp(req: dict, out: dict) -> None:
    host, port, timeout = endpoint(req)
    smtp = smtplib.SMTP(timeout=timeout, source_address=source_of(req))
    smtp._host = host  # STARTTLS verifies the name given to SMTP(), which connect() does not set
    try:
        code, msg = smtp.connect(host, port)
        out.update(local_port=port_of(smtp.sock), banner_code=code, banner=text(msg))
        if code != 220:
            raise smtplib.SMTPConnectError(code, msg)
        ehlo = need(req, "ehlo", str, "client.invalid")
        code, msg = smtp.ehlo(ehlo)
        if need(req, "starttls", bool, False):
            out["starttls_code"] = smtp.starttls(context=tls_context(req))[0]
            code, msg = smtp.ehlo(ehlo)
            out["tls_version"] = smtp.sock.version()
        out.update(ehlo_code=code, features=text(msg).splitlines()[1:])
        login = need(req, "login", dict, None)
        if login:
            out["login_ok"] = False
            smtp.login(need(login, "user", str), need(login, "password", str))
            out["login_ok"] = True
        send = need(req, "send", dict, None)
        if send:
            mail = email.message.EmailMessage()
            mail["From"], mail["To"] = need(send, "from", str), need(send, "to", str)
            mail["Subject"] = need(send, "subject", str, "mailring probe")
            mail["Date"] = email.utils.formatdate()
            mail["Message-ID"] = need(send, "message_id", str, None) or email.utils.make_msgid()
            for name, value in need(send, "headers", dict, {}).items():
                mail[str(name)] = str(value)
            mail.set_content(need(send, "body", str, "probe\n"))
            for step, command in (("mail", smtp.mail), ("rcpt", smtp.rcpt)):
                c, m = command(send["from"] if step == "mail" else send["to"])
                out[step + "_code"] = c
                if c >= 400:
                    raise smtplib.SMTPResponseException(c, m)
            code, msg = smtp.data(mail.as_bytes())
            out.update(data_code=code, data_reply=text(msg), message_id=mail["Message-ID"])
            found = re.search(r"queued as ([0-9A-Za-z]+)", out["data_reply"])
            out["queue_id"] = found.group(1) if found else None
        out["ok"] = out["ehlo_code"] == 250 and (not send or out["data_code"] == 250)
    finally:
        try:
            smtp.quit()
        except Exception:  # noqa: BLE001 - closing is best effort
            smtp.close()


def probe_pop3(req: dict, out: dict) -> None:
    host, port, timeout = endpoint(req)
    no_source(req)
    if need(req, "tls", bool, False):
        pop: poplib.POP3 = poplib.POP3_SSL(host, port, timeout=timeout, context=tls_context(req))
    else:
        pop = poplib.POP3(host, port, timeout=timeout)
    try:
        out.update(local_port=port_of(pop.sock), banner=text(pop.getwelcome()), login_ok=False)
        out["tls_version"] = getattr(pop.sock, "version", lambda: None)()
        pop.user(need(req, "user", str))
        pop.pass_(need(req, "password", str))
        out["login_ok"] = True
        out["count"], out["size"] = pop.stat()
        message_id = need(req, "message_id", str, None)
        if message_id is not None:  # TOP each message's header, RETR the ones with this Message-ID
            bodies = []
            for i in range(1, out["count"] + 1):
                if header_value(b"\r\n".join(pop.top(i, 0)[1]), "Message-ID") == message_id:
                    bodies.append(body_of(b"".join(line + b"\r\n" for line in pop.retr(i)[1])))
            out["bodies"] = bodies
        out["ok"] = True
    finally:
        try:
            pop.quit()
        except Exception:  # noqa: BLE001
            pop.close()


def header_value(raw: bytes, name: str) -> str | None:
    """One header of a raw message (or of its header block alone), stripped; None when absent."""
    import email.parser

    value = email.parser.BytesHeaderParser().parsebytes(raw).get(name)
    return str(value).strip() if value is not None else None


def body_of(raw: bytes) -> str:
    """The body of a raw message: what follows the first empty line, with LF line ends."""
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    return text(body if sep else b"")


def imap_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def probe_imap(req: dict, out: dict) -> None:
    host, port, timeout = endpoint(req)
    no_source(req)
    if need(req, "tls", bool, False):
        imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(req),
                                                timeout=timeout)
    else:
        imap = imaplib.IMAP4(host, port, timeout=timeout)
    try:
        out.update(local_port=port_of(imap.sock), banner=text(imap.welcome), login_ok=False)
        out["tls_version"] = getattr(imap.sock, "version", lambda: None)()
        imap.login(need(req, "user", str), need(req, "password", str))
        out["login_ok"] = True
        typ, data = imap.select("INBOX", readonly=True)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"SELECT INBOX: {typ} {data!r}")
        out["exists"] = int(text(data[0] or b"0"))
        subject = need(req, "search_subject", str, None)
        if subject is not None:
            typ, data = imap.search(None, "SUBJECT", imap_quote(subject))
            if typ != "OK":
                raise imaplib.IMAP4.error(f"SEARCH: {typ} {data!r}")
            ids = text(data[0] or b"").split()
            out.update(found=bool(ids), matches=len(ids))
        message_id = need(req, "message_id", str, None)
        if message_id is not None:  # SEARCH by Message-ID, FETCH each match's body
            typ, data = imap.search(None, "HEADER", "Message-ID", imap_quote(message_id))
            if typ != "OK":
                raise imaplib.IMAP4.error(f"SEARCH: {typ} {data!r}")
            bodies = []
            for num in text(data[0] or b"").split():
                typ, parts = imap.fetch(num, "(BODY.PEEK[])")
                raw = next((p[1] for p in parts if isinstance(p, tuple)), b"")
                if typ == "OK" and header_value(raw, "Message-ID") == message_id:
                    bodies.append(body_of(raw))
            out["bodies"] = bodies
        out["ok"] = True
    finally:
        try:
            imap.logout()
        except Exception:  # noqa: BLE001
            imap.shutdown()


def probe_http(req: dict, out: dict) -> None:
    host, port, timeout = endpoint(req)
    kw: dict[str, Any] = {"timeout": timeout, "source_address": source_of(req)}
    if need(req, "tls", bool, False):
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, context=tls_context(req), **kw)
    else:
        conn = http.client.HTTPConnection(host, port, **kw)
    try:
        conn.connect()
        out["local_port"] = port_of(conn.sock)
        headers = {"Host": need(req, "tls_name", str, host), "Connection": "close"}
        conn.request("GET", need(req, "path", str, "/"), headers=headers)
        resp = conn.getresponse()
        body = resp.read(65536)
        out.update(status=resp.status, reason=resp.reason, body=text(body)[:2000],
                   headers={k.lower(): v[:500] for k, v in list(resp.getheaders())[:50]})
        out["ok"] = 200 <= resp.status < 400
    finally:
        conn.close()


def read_line(sock: socket.socket, deadline: float) -> bytes:
    """Bytes up to the first newline (at most 1 KiB), all before ``deadline``."""
    line = b""
    while b"\n" not in line and len(line) < 1024:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out reading the banner")
        sock.settimeout(left)
        chunk = sock.recv(1024)
        if not chunk:
            break
        line += chunk
    return line


def greetings(req: dict) -> dict[str, tuple[re.Pattern, bytes]]:
    """The request's protocol table: name -> (greeting regex, what to send to leave)."""
    table = need(req, "protocols", dict)
    try:
        return {name: (re.compile(need(p, "greeting", str)), need(p, "quit", str, "").encode())
                for name, p in table.items()}
    except (re.error, AttributeError, TypeError) as e:
        raise BadRequest(f"protocols: {e}") from None


def banner_once(t: dict, table: dict[str, tuple[re.Pattern, bytes]]) -> dict:
    """Connect, read the first line, classify it; a network failure is a result, never raised."""
    host, port, timeout = endpoint(t)
    protocol = need(t, "protocol", str)
    if protocol not in table:
        raise BadRequest(f"protocol must be one of {sorted(table)}, not {protocol!r}")
    greeting, goodbye = table[protocol]
    out: dict[str, Any] = {"ok": False}
    deadline = time.monotonic() + timeout
    sock: Any = None
    try:
        sock = socket.create_connection((host, port), timeout, source_of(t))
        out["local_port"] = port_of(sock)
        if need(t, "tls", bool, False):
            sock = tls_context(t).wrap_socket(sock, server_hostname=host)
        if protocol == "http":
            name = need(t, "tls_name", str, host)
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
        line = read_line(sock, deadline)
        out["banner"] = first = text(line.split(b"\n", 1)[0]).rstrip("\r")
        if greeting.match(first):
            out["ok"] = True
        else:
            out["error"] = f"unexpected {protocol} banner: {first!r}" if line else "no banner"
        if line and goodbye:
            sock.sendall(goodbye)  # polite close; the reply is not awaited
    except Exception as e:  # noqa: BLE001
        if not out["ok"]:
            out["error"] = out.get("error") or err(e)
    finally:
        if sock is not None:
            sock.close()
    return out


def probe_banner(req: dict, out: dict) -> None:
    out.update(banner_once(req, greetings(req)))


def each_target(req: dict, once: Callable[[dict], dict]) -> dict[str, dict]:
    """``once(target)`` for every target of the request, all at once: name -> result."""
    from concurrent.futures import ThreadPoolExecutor

    targets = need(req, "targets", list)
    if not targets or len(targets) > MAX_SWEEP or not all(isinstance(t, dict) for t in targets):
        raise BadRequest(f"targets must be 1..{MAX_SWEEP} objects")
    for t in targets:
        need(t, "name", str)
        endpoint(t)
    with ThreadPoolExecutor(max_workers=min(32, len(targets))) as pool:
        results = list(pool.map(once, targets))
    return {t["name"]: r for t, r in zip(targets, results, strict=True)}


def probe_sweep(req: dict, out: dict) -> None:
    """One banner probe per target, all at once: {"targets": [{name, host, port, protocol, ...}]}."""
    table = greetings(req)
    out["results"] = each_target(req, lambda t: banner_once(t, table))
    out["ok"] = all(r["ok"] for r in out["results"].values())


def proxy_header(forged: str, dst: str, src_port: int, dst_port: int) -> bytes:
    """A PROXY protocol v1 header that says the connection came from ``forged``."""
    return f"PROXY TCP4 {forged} {dst} {src_port} {dst_port}\r\n".encode()


def forge_once(t: dict, forged: str) -> dict:
    """Connect to one target, send a PROXY header naming ``forged`` and then the target's
    ``then`` bytes (a goodbye, or a request), and read what the server answers until it
    closes. With ``greeting_wait`` (seconds), a greeting that comes within it is read
    first, and the answer to the header before ``then`` goes: to a server that takes no
    PROXY header it is an ordinary (bad) command, not bytes the server quotes in its log
    as sent too early; a listener that waits for a header sends no greeting, and gets
    the header once the wait is over. The result says how far the
    attempt got: refused, or connected, sent and answered; a network failure is a
    result, never raised."""
    host, port, timeout = endpoint(t)
    wait = float(need(t, "greeting_wait", (int, float), 0))
    out: dict[str, Any] = {"connected": False, "sent": False, "greeting": "", "reply": ""}
    deadline = time.monotonic() + timeout
    sock: Any = None
    try:
        sock = socket.create_connection((host, port), timeout)
        out["connected"], out["local_port"] = True, port_of(sock)
        if wait > 0:
            try:
                out["greeting"] = text(read_line(sock, time.monotonic() + min(wait, timeout)))
            except TimeoutError:
                pass  # none came: a listener waiting for the header
        sock.sendall(proxy_header(forged, host, out["local_port"], port))
        out["sent"] = True
        if wait > 0:  # the answer to the header line (or a PROXY listener's greeting) first
            try:
                out["after_header"] = text(read_line(sock, time.monotonic() + min(wait, timeout)))
            except TimeoutError:
                pass
        sock.sendall(need(t, "then", str, "").encode())
        reply = b""
        while len(reply) < 4096 and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        out["reply"] = text(reply)[:1000]
    except ConnectionRefusedError as e:
        out["refused"], out["error"] = True, err(e)
    except Exception as e:  # noqa: BLE001
        out["error"] = err(e)
    finally:
        if sock is not None:
            sock.close()
    return out


def probe_forge(req: dict, out: dict) -> None:
    """A forged PROXY header to every target at once: {"forged": addr, "targets": [{name,
    host, port, then}]}; per target how far it got (see forge_once)."""
    forged = need(req, "forged", str)
    out["results"] = each_target(req, lambda t: forge_once(t, forged))
    out["ok"] = True


def hold(req: dict) -> int:
    """An IMAP session kept open: log in, print a ready line, wait for stdin EOF (or
    max_seconds), then NOOP and LOGOUT on the same connection and print the result.
    Shows whether a session opened before a drain finishes on its server."""
    host, port, timeout = endpoint(req)
    limit = min(float(need(req, "max_seconds", (int, float), 60)), MAX_SECONDS)
    user, password = need(req, "user", str), need(req, "password", str)
    out: dict[str, Any] = {"kind": "hold", "ok": False}
    start = time.monotonic()
    try:
        imap = imaplib.IMAP4(host, port, timeout=timeout)
        out.update(local_port=port_of(imap.sock), banner=text(imap.welcome))
        imap.login(user, password)
        print(json.dumps({"ready": True, **out}), flush=True)
        waiter = threading.Thread(target=lambda: os.read(0, 1), daemon=True)
        waiter.start()
        waiter.join(limit)
        typ, data = imap.noop()
        out["noop"] = f"{typ} {text(data[0] or b'') if data else ''}".strip()
        out["ok"] = typ == "OK"
        imap.logout()
    except Exception as e:  # noqa: BLE001
        out["error"] = err(e)
    out["elapsed"] = round(time.monotonic() - start, 6)
    print(json.dumps(out), flush=True)
    return 0


# --- streaming probes: JSON lines until stopped -------------------------------
class Lines:
    """JSON lines on stdout from many threads, counted; ``close()`` writes the done line
    ({"done": true, "attempts": N}) and nothing is written after it. A reader gone sets ``stop``."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.lock, self.count, self.closed = stop, threading.Lock(), 0, False

    def emit(self, obj: dict) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                sys.stdout.write(json.dumps(obj) + "\n")
                sys.stdout.flush()
                self.count += 1
            except (OSError, ValueError):
                self.stop.set()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            try:
                sys.stdout.write(json.dumps({"done": True, "attempts": self.count}) + "\n")
                sys.stdout.flush()
            except OSError:
                pass  # the reader is gone: nobody is left to tell


def stop_on_eof_or_signal(stop: threading.Event, watch_stdin: bool = True) -> None:
    """Set ``stop`` on SIGTERM/SIGINT and, if ``watch_stdin``, when stdin closes."""
    def watch() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader
        # holds its lock and aborts the interpreter at exit.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if watch_stdin:
        threading.Thread(target=watch, daemon=True).start()


# --- timeline ------------------------------------------------------------
def timeline(req: dict) -> int:
    targets = need(req, "targets", list)
    if not targets or len(targets) > MAX_TARGETS or not all(isinstance(t, dict) for t in targets):
        raise BadRequest(f"targets must be 1..{MAX_TARGETS} objects")
    hz = min(float(need(req, "hz", (int, float), 20)), MAX_HZ)
    limit = min(float(need(req, "max_seconds", (int, float), 60)), MAX_SECONDS)
    timeout = float(need(req, "timeout", (int, float), 0.5))
    if hz <= 0:
        raise BadRequest("hz must be > 0")
    table = greetings(req)
    specs = [dict(t, timeout=t.get("timeout", timeout)) for t in targets]
    for spec in specs:  # validate everything before the first line is written
        need(spec, "name", str)
        endpoint(spec)
        if spec.get("protocol") not in table:
            raise BadRequest(f"target {spec['name']}: bad protocol {spec.get('protocol')!r}")
        spec["hz"] = min(float(need(spec, "hz", (int, float), hz)), MAX_HZ)  # a target may sample slower
        if spec["hz"] <= 0:
            raise BadRequest(f"target {spec['name']}: hz must be > 0")
    if len({s["name"] for s in specs}) != len(specs):
        raise BadRequest("target names must be unique")
    longest = max(float(s["timeout"]) for s in specs)
    stop = threading.Event()
    out = Lines(stop)

    def sample(spec: dict) -> None:
        start = time.monotonic()
        k = 0
        while not stop.is_set():
            t0 = time.time()
            res = banner_once(spec, table)
            line = {"t": t0, "end": time.time(), "target": spec["name"],
                    "type": "ok" if res["ok"] else "fail", "local_port": res.get("local_port")}
            if res["ok"]:
                line["banner"] = res.get("banner", "")[:120]
            else:
                line["error"] = res.get("error", "")
            out.emit(line)
            rate = spec["hz"]
            k = max(k + 1, int((time.monotonic() - start) * rate) + 1)  # late: skip, never burst
            stop.wait(max(0.0, start + k / rate - time.monotonic()))

    stop_on_eof_or_signal(stop, need(req, "watch_stdin", bool, True))
    workers = [threading.Thread(target=sample, args=(s,), daemon=True) for s in specs]
    for w in workers:
        w.start()
    stop.wait(limit)
    stop.set()
    for w in workers:
        w.join(longest * 3 + 5)
    out.close()  # a straggler still running after join() writes nothing more
    return 0


# --- adverts: the CARP (or VRRP) adverts the client's LAN carries ------------------
ADVERT_GROUP, IPPROTO_CARP = "224.0.0.18", 112  # CARP and VRRP share the group and protocol


def parse_advert(packet: bytes) -> dict | None:
    """Source, vhid, version and byte 2 (VRRP's priority, CARP's advskew) of one IPv4 packet
    of protocol 112 as a raw socket reads it (IP header first); None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != IPPROTO_CARP:
        return None
    head = packet[(packet[0] & 0x0F) * 4:]
    if len(head) < 8:
        return None
    return {"src": socket.inet_ntoa(packet[12:16]), "vhid": head[1], "version": head[0] >> 4,
            "prio": head[2]}


def adverts(req: dict) -> int:
    """Stream every advert from ``sources`` (all when empty) heard on the interface that holds
    ``local``, as {"t", "src", "vhid", "version", "prio"}, until stopped or ``max_seconds``.
    The first line, {"listening": true}, says the group is joined (root: a raw socket)."""
    local = need(req, "local", str)
    sources = set(need(req, "sources", list, []))
    limit = min(float(need(req, "max_seconds", (int, float), 60)), MAX_SECONDS)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_CARP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    socket.inet_aton(ADVERT_GROUP) + socket.inet_aton(local))
    sock.settimeout(0.5)  # how soon a stop is seen; adverts wake it at once
    stop = threading.Event()
    out = Lines(stop)
    stop_on_eof_or_signal(stop, need(req, "watch_stdin", bool, True))
    out.emit({"listening": True, "t": time.time()})
    deadline = time.monotonic() + limit
    with sock:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                packet = sock.recv(2048)
            except TimeoutError:
                continue
            t = time.time()
            advert = parse_advert(packet)
            if advert and (not sources or advert["src"] in sources):
                out.emit({"t": t, **advert})
    out.close()
    return 0


# --- mail flow: a writer submitting numbered messages, a reader of Message-IDs ----
MAX_RATE, MAX_MESSAGES, MAX_WORKERS = 100.0, 10000, 32


def submit_one(host: str, port: int, timeout: float, mail: email.message.EmailMessage,
               sender: str, rcpt: str, ehlo: str) -> dict:
    """One SMTP submission; every outcome is a result: accepted (250 after DATA, with the queue
    id), refused (a 4xx/5xx reply, with its code) or error (no reply; ``stage`` says where)."""
    out: dict[str, Any] = {"host": host, "stage": "connect"}
    smtp = smtplib.SMTP(timeout=timeout)
    try:
        code, msg = smtp.connect(host, port)
        out.update(local_port=port_of(smtp.sock), banner=text(msg)[:200])
        steps = (("banner", 220, None), ("ehlo", 250, lambda: smtp.ehlo(ehlo)),
                 ("mail", None, lambda: smtp.mail(sender)), ("rcpt", None, lambda: smtp.rcpt(rcpt)),
                 ("data", 250, lambda: smtp.data(mail.as_bytes(policy=email.policy.SMTP))))
        for stage, want, step in steps:  # want: the one good code; None: any code below 400
            out["stage"] = stage
            if step is not None:
                code, msg = step()
            if (code != want) if want else code >= 400:
                out.update(outcome="refused", code=code, reply=text(msg)[:200])
                return out
        found = re.search(r"queued as ([0-9A-Za-z]+)", text(msg))
        out.update(outcome="accepted", code=code, queue_id=found.group(1) if found else None)
        out["stage"] = "done"
    except smtplib.SMTPResponseException as e:  # e.g. DATA's 354 not given: a reply, a refusal
        out.update(outcome="refused", code=e.smtp_code, reply=text(e.smtp_error)[:200])
    except Exception as e:  # noqa: BLE001 - timeouts, resets: the server said nothing final
        out.update(outcome="error", error=err(e))
    finally:
        try:
            smtp.quit()
        except Exception:  # noqa: BLE001
            smtp.close()
    return out


def first_address(name: str, timeout: float, server: str | None = None, port: int = 53) -> str:
    """The first A record of a fresh query to the node's resolver (/etc/resolv.conf, no cache),
    in the order the resolver gave. Not getaddrinfo(): glibc sorts the answers (RFC 6724 rule 9,
    longest prefix shared with the source), so a client in the VIPs' subnet always gets the same
    first VIP and round-robin DNS never reaches it."""
    import dns.resolver

    res = dns.resolver.Resolver(configure=server is None)
    if server:
        res.nameservers, res.port = [server], port
    res.cache, res.timeout, res.lifetime = None, timeout, timeout
    answer = res.resolve(name, "A", search=False)
    return answer.rrset[0].address


def writer(req: dict) -> int:
    """Submit numbered messages at ``rate`` per second until ``count`` were attempted, ``max_seconds``
    passed or stdin closes; one JSON line per attempt, then a done line.

    Each message has Message-ID ``<prefix.seq@domain>`` and header X-Mailring-Seq. It goes to
    one of ``hosts`` in turn or, with ``name``, to the first address a fresh query of the
    client's resolver gives (once per connection; see ``first_address``).
    """
    port = need(req, "port", int)
    hosts, name = need(req, "hosts", list, None), need(req, "name", str, None)
    if bool(hosts) == bool(name) or not all(isinstance(h, str) for h in hosts or []):
        raise BadRequest("give either hosts (a list of addresses) or name (resolved per connection)")
    sender, rcpt, prefix = need(req, "from", str), need(req, "to", str), need(req, "prefix", str)
    domain = need(req, "domain", str, "client.invalid")
    dns_server, dns_port = need(req, "dns_server", str, None), need(req, "dns_port", int, 53)
    rate = float(need(req, "rate", (int, float), 10))
    count = need(req, "count", int, 100)
    limit = float(need(req, "max_seconds", (int, float), 60))
    timeout = float(need(req, "timeout", (int, float), 3.0))
    workers = need(req, "workers", int, 8)
    if not (0 < rate <= MAX_RATE and 0 < count <= MAX_MESSAGES and 0 < limit <= MAX_SECONDS
            and 0 < timeout <= 60 and 0 < workers <= MAX_WORKERS):
        raise BadRequest(f"rate 0..{MAX_RATE}, count 1..{MAX_MESSAGES}, max_seconds 0..{MAX_SECONDS}, "
                         f"timeout 0..60, workers 1..{MAX_WORKERS}")
    stop, lock = threading.Event(), threading.Lock()
    out, state = Lines(stop), {"next": 0}
    start = time.monotonic()

    def work() -> None:
        while not stop.is_set():
            with lock:
                seq = state["next"]
                if seq >= count:
                    return
                state["next"] += 1
            if stop.wait(max(0.0, start + seq / rate - time.monotonic())) or \
                    time.monotonic() - start > limit:
                return  # stopped before its turn: never attempted, never recorded
            mid = f"<{prefix}.{seq}@{domain}>"
            mail = email.message.EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = sender, rcpt, f"mailring flow {prefix} #{seq}"
            mail["Date"], mail["Message-ID"], mail["X-Mailring-Seq"] = email.utils.formatdate(), mid, str(seq)
            mail.set_content(f"mail flow {prefix}, message {seq}\n")
            t0 = time.time()
            host = hosts[seq % len(hosts)] if hosts else None
            try:
                if host is None:
                    host = first_address(name, timeout, dns_server, dns_port)
                res = submit_one(host, port, timeout, mail, sender, rcpt, domain)
            except Exception as e:  # noqa: BLE001 - the name did not resolve
                res = {"host": host, "stage": "resolve", "outcome": "error", "error": err(e)}
            out.emit({"seq": seq, "message_id": mid, "t": t0, "end": time.time(), **res})

    stop_on_eof_or_signal(stop)
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit + 6 * timeout + 5)
    out.close()
    return 0


def probe_mailbox(req: dict, out: dict) -> None:
    """Every Message-ID (containing ``match``, if given) in each user's INBOX, repeats kept:
    {"users": [{"user", "password"}], "host", "port"} -> {"mailboxes": {user: [ids]}}."""
    host, port, timeout = endpoint(req)
    no_source(req)
    users = need(req, "users", list)
    match = need(req, "match", str, "")
    boxes: dict[str, list[str]] = {}
    for u in users:
        if not isinstance(u, dict):
            raise BadRequest("users must be objects {user, password}")
        user, password = need(u, "user", str), need(u, "password", str)
        imap = imaplib.IMAP4(host, port, timeout=timeout)
        try:
            imap.login(user, password)
            typ, data = imap.select("INBOX", readonly=True)
            if typ != "OK":
                raise imaplib.IMAP4.error(f"SELECT INBOX as {user}: {typ} {data!r}")
            ids: list[str] = []
            if int(text(data[0] or b"0")):
                typ, parts = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                if typ != "OK":
                    raise imaplib.IMAP4.error(f"FETCH as {user}: {typ}")
                for part in parts:
                    if isinstance(part, tuple):
                        mid = header_value(part[1], "Message-ID")
                        if mid and match in mid:
                            ids.append(mid)
            boxes[user] = ids
        finally:
            try:
                imap.logout()
            except Exception:  # noqa: BLE001
                imap.shutdown()
    out["mailboxes"] = boxes
    out["ok"] = True


KINDS: dict[str, Callable[[dict, dict], None]] = {
    "dns": probe_dns, "smtp": probe_smtp, "pop3": probe_pop3, "imap": probe_imap,
    "http": probe_http, "banner": probe_banner, "sweep": probe_sweep, "mailbox": probe_mailbox,
    "forge": probe_forge,
}


def answer(req: Any) -> dict:
    """The result of one one-shot request (every kind in KINDS); BadRequest when it is malformed.
    A failed service is a result (``"ok": false``), never raised."""
    if not isinstance(req, dict):
        raise BadRequest("request must be a JSON object")
    kind = req.get("kind")
    if kind not in KINDS:
        raise BadRequest(f"unknown kind {kind!r}; use timeline, hold, writer, adverts "
                         f"or one of {sorted(KINDS)}")
    out: dict[str, Any] = {"kind": kind, "ok": False}
    start = time.monotonic()
    try:
        KINDS[kind](req, out)
    except BadRequest:
        raise
    except Exception as e:  # noqa: BLE001 - a failed service is a result, not a crash
        out["ok"], out["error"] = False, err(e)
    out["elapsed"] = round(time.monotonic() - start, 6)
    return out


# --- agent: one process answering many requests ------------------------------------
MAX_INFLIGHT = 32
HELLO = {"agent": "probe.py", "protocol": 1}


def serve(stdin: Any = None, stdout: Any = None) -> int:
    """The probe agent (``probe.py --serve``): one request per stdin line, one result line each.

    A request is a one-shot request (a kind in KINDS) with an ``"id"`` (a number or a string);
    its result line is ``answer``'s object with the same ``id``. Requests run at once, each in
    a worker thread (up to MAX_INFLIGHT, then they queue), so results come back in the order
    they finish, not the order they were asked. A malformed line is answered with
    ``{"id": <its id or null>, "ok": false, "bad_request": true, "error": "bad request: ..."}``
    and the agent goes on; a request the probe itself failed on (a bug, not a failed service)
    gets ``"internal_error": true``. The first line written is HELLO; at stdin EOF the agent
    lets the requests in flight finish, each bounded by its own timeouts, and exits 0.
    """
    from concurrent.futures import ThreadPoolExecutor

    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    lock = threading.Lock()

    def write(obj: dict) -> None:
        with lock:
            try:
                stdout.write(json.dumps(obj) + "\n")
                stdout.flush()
            except (OSError, ValueError):
                pass  # the host is gone: it reads no more results

    def handle(rid: Any, req: dict) -> None:
        try:
            write({**answer(req), "id": rid})
        except BadRequest as e:
            write({"id": rid, "ok": False, "bad_request": True, "error": "bad request: " + str(e)})
        except Exception as e:  # noqa: BLE001 - a bug in one request must not end the agent
            write({"id": rid, "ok": False, "internal_error": True, "error": "probe failed: " + err(e)})

    write(HELLO)
    with ThreadPoolExecutor(max_workers=MAX_INFLIGHT) as pool:
        for line in stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                write({"id": None, "ok": False, "bad_request": True,
                       "error": f"bad request: not JSON: {e}"})
                continue
            rid = req.get("id") if isinstance(req, dict) else None
            if not isinstance(rid, (int, str)) or isinstance(rid, bool):
                write({"id": None, "ok": False, "bad_request": True,
                       "error": "bad request: every request needs an id (a number or a string)"})
                continue
            pool.submit(handle, rid, req)
    return 0


def main(argv: list[str]) -> int:
    try:
        if argv[1:] == ["--serve"]:
            return serve()
        if len(argv) != 2:
            raise BadRequest("usage: probe.py '<json request>' | probe.py --serve")
        try:
            req = json.loads(argv[1])
        except ValueError as e:
            raise BadRequest(f"request is not JSON: {e}") from None
        if not isinstance(req, dict):
            raise BadRequest("request must be a JSON object")
        kind = req.get("kind")
        if kind == "timeline":
            return timeline(req)
        if kind == "hold":
            return hold(req)
        if kind == "writer":
            return writer(req)
        if kind == "adverts":
            return adverts(req)
        print(json.dumps(answer(req)))
        return 0
    except BadRequest as e:
        print(json.dumps({"ok": False, "error": "bad request: " + str(e)}))
        print(f"probe.py: bad request: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
