"""Parsers of Postfix, Dovecot and HAProxy log lines into records, for log checks.

Pure functions over text, as ``Cluster.log_text(node, service)`` returns it:

* Postfix ``maillog_file`` lines (``Nov 25 19:40:01 mail01 postfix/smtpd[123]: ...``,
  syslog or ISO-8601 timestamps): connect / client= / disconnect events and
  postscreen's ``CONNECT from [addr]:port``.
* Dovecot ``log_path`` lines (``Nov 25 19:40:01 imap-login: Info: Login: user=<..>,
  rip=.., lip=..``), also with a syslog ``host dovecot[pid]:`` prefix.
* HAProxy ``option tcplog`` / ``option httplog`` lines, with or without a
  syslog-like ``<134>Nov 25 19:40:01 haproxy[12]:`` prefix, and mailring's
  formats that add ``%bi:%bp`` (the source of HAProxy's connection to the
  server) after ``%sq/%bq``.

``parse_lines(service, text)`` keeps every non-blank line: a line no parser
understands becomes an ``OtherRecord`` holding the raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

TIME = (r"(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
        r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
ENDPOINT = r"(?P<chost>[^\s\[\]]+)\[(?P<caddr>[^\]]+)\](?::(?P<cport>\d+))?"


@dataclass(frozen=True)
class PostfixRecord:
    raw: str
    time: str
    host: str
    program: str  # the syslog name after "postfix/": smtpd, smtpd-proxy, postscreen ...
    pid: int
    event: str  # connect | client | disconnect | other
    message: str
    client_host: str | None = None  # "unknown" when the address has no name
    client_addr: str | None = None
    client_port: int | None = None
    queue_id: str | None = None
    service: ClassVar[str] = "postfix"


@dataclass(frozen=True)
class DovecotRecord:
    raw: str
    time: str
    program: str  # imap-login, pop3-login, imap, lmtp, auth, master ...
    level: str | None  # Info | Warning | Error | Fatal | Panic | Debug; None when not logged
    event: str  # the message's leading phrase: Login, Disconnected, Aborted login ...
    message: str
    user: str | None = None
    rip: str | None = None
    lip: str | None = None
    rport: int | None = None
    lport: int | None = None
    session: str | None = None
    service: ClassVar[str] = "dovecot"


@dataclass(frozen=True)
class HaproxyRecord:
    raw: str
    client_addr: str
    client_port: int
    accept: str  # accept date as logged: 25/Nov/2026:19:40:01.123
    frontend: str  # "~" suffix (TLS) kept as logged
    backend: str
    server: str  # <NOSRV> when no server was picked
    mode: str  # tcp | http
    timers: tuple[int, ...]
    bytes_read: int
    termination: str
    status: int | None = None  # http only
    request: str | None = None  # http only
    # %bi:%bp: where HAProxy connected to the server from; None when not logged or no connection
    backend_source_addr: str | None = None
    backend_source_port: int | None = None
    event: ClassVar[str] = "session"
    service: ClassVar[str] = "haproxy"


@dataclass(frozen=True)
class OtherRecord:
    """A line no parser understood, kept verbatim."""

    service: str
    raw: str
    event: ClassVar[str] = "other"


Record = PostfixRecord | DovecotRecord | HaproxyRecord | OtherRecord

# --- postfix ---------------------------------------------------------------
_POSTFIX = re.compile(rf"^(?P<time>{TIME})\s+(?P<host>\S+)\s+"
                      r"postfix[^\s\[/]*/(?P<program>[^\s\[]+)\[(?P<pid>\d+)\]:\s?(?P<msg>.*)$")
_QUEUE_ID = re.compile(r"^(?P<qid>[0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}):\s")
_PF_EVENTS = (
    ("connect", re.compile(rf"^connect from {ENDPOINT}")),
    ("disconnect", re.compile(rf"^disconnect from {ENDPOINT}")),
    ("client", re.compile(rf"^client={ENDPOINT}")),
    ("connect", re.compile(r"^CONNECT from \[(?P<caddr>[^\]]+)\]:(?P<cport>\d+)")),
    ("disconnect", re.compile(r"^DISCONNECT \[(?P<caddr>[^\]]+)\]:(?P<cport>\d+)")),
)


def parse_postfix(line: str) -> PostfixRecord | None:
    m = _POSTFIX.match(line)
    if not m:
        return None
    msg = m["msg"]
    q = _QUEUE_ID.match(msg)
    body = msg[q.end():] if q else msg
    fields: dict[str, str | int | None] = {"event": "other"}
    for event, pattern in _PF_EVENTS:
        e = pattern.match(body)
        if e:
            groups = e.groupdict()
            fields = {"event": event, "client_host": groups.get("chost"),
                      "client_addr": groups["caddr"],
                      "client_port": int(groups["cport"]) if groups.get("cport") else None}
            break
    return PostfixRecord(raw=line, time=m["time"], host=m["host"], program=m["program"],
                         pid=int(m["pid"]), message=msg, queue_id=q["qid"] if q else None,
                         **fields)  # type: ignore[arg-type]


# --- dovecot ---------------------------------------------------------------
_DOVECOT = re.compile(
    rf"^(?P<time>{TIME})\s+(?:\S+\s+dovecot(?:\[\d+\])?:\s+)?"
    r"(?P<program>[a-z][\w-]*)(?:\((?P<ctx>[^)]*)\))?(?:<[^>]*>)*:\s"
    r"(?:(?P<level>Info|Warning|Error|Fatal|Panic|Debug):\s)?(?P<msg>.*)$")
_KV = re.compile(r"(?:^|[\s,:])(?P<k>[a-z_]+)=(?P<v><[^>]*>|[^,\s]+)")
_EVENT = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s*(?:\(|:|$)")


def parse_dovecot(line: str) -> DovecotRecord | None:
    m = _DOVECOT.match(line)
    if not m:
        return None
    msg = m["msg"]
    kv = {k: v.strip("<>") for k, v in _KV.findall(msg)}
    ctx = m["ctx"]
    user = kv.get("user") or (ctx if ctx and not ctx.isdigit() else None)
    ev = _EVENT.match(msg)

    def port(key: str) -> int | None:
        return int(kv[key]) if kv.get(key, "").isdigit() else None

    return DovecotRecord(raw=line, time=m["time"], program=m["program"], level=m["level"],
                         event=ev.group(1) if ev else "other", message=msg, user=user or None,
                         rip=kv.get("rip"), lip=kv.get("lip"), rport=port("rport"),
                         lport=port("lport"), session=kv.get("session"))


# --- haproxy ---------------------------------------------------------------
_HA_PREFIX = re.compile(rf"^(?:<\d+>)?(?:1 \S+ \S+ haproxy \S+ \S+ \S+ |{TIME} (?:\S+ )?"
                        r"haproxy(?:\[\d+\])?: )")
_HAPROXY = re.compile(
    r"^(?P<addr>[0-9a-fA-F.:]+):(?P<port>\d+) \[(?P<accept>[^\]]+)\] (?P<fe>\S+) "
    r"(?P<be>[^\s/]+)/(?P<srv>\S+) (?P<timers>-?\d+(?:/-?\d+){2,4}) (?P<rest>.*)$")
_HA_SOURCE = r"(?: (?P<bi>[0-9a-fA-F.:]+|-):(?P<bp>\d+|-)(?= |$))?"
_HA_TCP = re.compile(r"^\+?(?P<bytes>\d+) (?P<term>\S+) \S+ \S+" + _HA_SOURCE)
_HA_HTTP = re.compile(r'^(?P<status>-?\d+) \+?(?P<bytes>\d+) \S+ \S+ (?P<term>\S+) \S+ \S+' + _HA_SOURCE
                      + r'(?:.*? "(?P<request>[^"]*)")?\s*$')


def parse_haproxy(line: str) -> HaproxyRecord | None:
    m = _HAPROXY.match(_HA_PREFIX.sub("", line, count=1))
    if not m:
        return None
    timers = tuple(int(t) for t in m["timers"].split("/"))
    http = len(timers) == 5
    rest = (_HA_HTTP if http else _HA_TCP).match(m["rest"])
    if not rest:
        return None
    return HaproxyRecord(raw=line, client_addr=m["addr"], client_port=int(m["port"]),
                         accept=m["accept"], frontend=m["fe"], backend=m["be"], server=m["srv"],
                         mode="http" if http else "tcp", timers=timers,
                         bytes_read=int(rest["bytes"]), termination=rest["term"],
                         status=int(rest["status"]) if http else None,
                         request=rest["request"] if http else None,
                         backend_source_addr=rest["bi"] if rest["bi"] not in (None, "-") else None,
                         backend_source_port=int(rest["bp"]) if (rest["bp"] or "-") != "-" else None)


PARSERS = {"postfix": parse_postfix, "dovecot": parse_dovecot, "haproxy": parse_haproxy}


def parse_line(service: str, line: str) -> Record:
    """One line as a record of the service's type, or an OtherRecord with the raw text."""
    if service not in PARSERS:
        raise ValueError(f"no log parser for {service!r}; use one of: {', '.join(PARSERS)}")
    line = line.rstrip("\r\n")
    return PARSERS[service](line) or OtherRecord(service=service, raw=line)


def parse_lines(service: str, text: str) -> list[Record]:
    """Every non-blank line of ``text``, in order; unparseable lines become OtherRecords."""
    return [parse_line(service, line) for line in text.splitlines() if line.strip()]
