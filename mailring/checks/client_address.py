"""Which client address did a daemon log for a probe's session? Find the session, judge the address.

Pure functions over records from ``mailring.logparse``:

* ``haproxy_session`` finds HAProxy's line for a client connection (client
  address and source port), which names the backend server that got it and,
  with mailring's log format, the address and port HAProxy connected to that
  server from (``%bi:%bp``).
* ``postfix_session`` finds Postfix's ``client=`` line by queue id (or its
  ``connect from`` line by client port); ``dovecot_login`` finds Dovecot's
  ``Login:`` line by user and remote port.
* ``expected_peer`` says what the serving daemon must log: with PROXY on, the
  client's own address and source port; with PROXY off, HAProxy's address and
  source port toward the daemon, i.e. what HAProxy's line links the client to.
* ``check_logged_client`` raises ``ClientAddressError`` naming the daemon, its
  node, the logged and the expected address when they differ.
* ``server_states`` reads HAProxy's ``show stat`` answer: which server of a
  backend is UP or DOWN and why (its last check), to know where a session went.

A session not (yet) in the log raises ``SessionNotFound``, a ``NotYet`` (so
``eventually`` polls for a late log line) and a ``CheckError``; a wrong address
raises ``ClientAddressError``, a verdict that fails at once.

Reading a running cluster is ``mailring.polling``'s: ``polling.logs.LogCursor``
reads only what was logged after a probe began (a health check from another
node may have used the same source port seconds earlier), and
``polling.haproxy.wait_server`` waits for HAProxy's runtime API to report a
server UP or DOWN.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass

from mailring.checks import CheckError, NotYet
from mailring.logparse import DovecotRecord, HaproxyRecord, PostfixRecord, Record


class SessionNotFound(CheckError, NotYet):
    """The log holds no line for the session (yet): ``eventually`` polls again."""


class ClientAddressError(CheckError):
    """A daemon logged another client address (or port) than expected for a session."""


@dataclass(frozen=True)
class Peer:
    """Who a daemon must log as its client: ``name`` (a node) at ``address``:``port``."""

    name: str
    address: str
    port: int | None
    why: str = ""  # e.g. "HAProxy, PROXY off"

    def describe(self) -> str:
        extra = f" ({self.why})" if self.why else ""
        return f"{self.name}'s {self.address}{extra}"


def haproxy_session(records: Iterable[Record], client_addr: str, client_port: int,
                    backend: str | None = None) -> HaproxyRecord:
    """HAProxy's line for the connection from ``client_addr:client_port`` (the newest if several)."""
    seen = [r for r in records if isinstance(r, HaproxyRecord)]
    found = [r for r in seen if r.client_addr == client_addr and r.client_port == client_port
             and (backend is None or r.backend == backend)]
    if not found:
        where = f" in {backend}" if backend else ""
        raise SessionNotFound(f"no HAProxy session from {client_addr}:{client_port}{where} among "
                              f"{len(seen)} session lines")
    return found[-1]


def postfix_session(records: Iterable[Record], queue_id: str | None = None,
                    client_port: int | None = None) -> PostfixRecord:
    """Postfix's ``client=`` line of ``queue_id``, or its ``connect from`` line for ``client_port``."""
    if (queue_id is None) == (client_port is None):
        raise ValueError("give exactly one of queue_id and client_port")
    seen = [r for r in records if isinstance(r, PostfixRecord)]
    if queue_id is not None:
        found = [r for r in seen if r.event == "client" and r.queue_id == queue_id]
        what = f"queue id {queue_id}"
    else:
        found = [r for r in seen if r.event == "connect" and r.client_port == client_port]
        what = f"a connection from port {client_port}"
    if not found:
        raise SessionNotFound(f"no Postfix line for {what} among {len(seen)} Postfix lines")
    return found[-1]


def dovecot_login(records: Iterable[Record], user: str, remote_port: int | None = None) -> DovecotRecord:
    """Dovecot's newest ``Login:`` line for ``user`` (from remote port ``remote_port``, if given).

    Health checks never log in, so among the lines logged since a probe began the
    user's login is the probe's even when its address or port is wrong.
    """
    seen = [r for r in records if isinstance(r, DovecotRecord)]
    found = [r for r in seen if r.event == "Login" and r.user == user
             and (remote_port is None or r.rport == remote_port)]
    if not found:
        logins = sum(1 for r in seen if r.event == "Login")
        port = f" from port {remote_port}" if remote_port is not None else ""
        raise SessionNotFound(f"no Dovecot login of {user}{port} among {logins} logins "
                              f"({len(seen)} Dovecot lines)")
    return found[-1]


def logged_peer(record: PostfixRecord | DovecotRecord) -> tuple[str | None, int | None]:
    """The client address and port a daemon's line names."""
    if isinstance(record, PostfixRecord):
        return record.client_addr, record.client_port
    return record.rip, record.rport


def expected_peer(proxy_protocol: bool, client: tuple[str, str, int], hop: HaproxyRecord,
                  haproxy_node: str) -> Peer:
    """What the serving daemon must log for the session HAProxy logged as ``hop``.

    ``client`` is (name, address, source port) of the probing client. With PROXY
    on that is the answer; with PROXY off the daemon sees HAProxy's connection,
    whose source ``hop`` holds (``%bi:%bp``).
    """
    name, addr, port = client
    if proxy_protocol:
        return Peer(name, addr, port)
    if hop.backend_source_addr is None:
        raise CheckError(f"HAProxy on {haproxy_node} logged no backend source (%bi:%bp) for the "
                         f"session from {addr}:{port}: {hop.raw!r}")
    return Peer(haproxy_node, hop.backend_source_addr, hop.backend_source_port, "HAProxy, PROXY off")


def check_logged_client(daemon: str, node: str, record: PostfixRecord | DovecotRecord,
                        session: str, client_port: int, expected: Peer) -> None:
    """Raise ClientAddressError unless ``record`` names ``expected`` (address, and port when known).

    ``session`` names the protocol (SMTP, IMAP, ...), ``client_port`` the client's source port.
    """
    addr, port = logged_peer(record)
    what = f"for the {session} session from port {client_port}"
    if addr != expected.address:
        raise ClientAddressError(f"{daemon} on {node} logged client {addr} {what}, expected "
                                 f"{expected.describe()}; line: {record.raw}")
    if expected.port is not None and port != expected.port:
        raise ClientAddressError(f"{daemon} on {node} logged client port {port} {what}, expected "
                                 f"{expected.port} ({expected.describe()}); line: {record.raw}")


@dataclass(frozen=True)
class ServerState:
    """One server line of HAProxy's ``show stat``."""

    backend: str
    server: str
    status: str  # UP | DOWN | MAINT | DRAIN | NOLB | "UP 1/2" (going down) | "DOWN 1/2" (going up) ...
    check_status: str  # L7OK | L7RSP | L7STS | L4CON | L4TOUT | ... ("* " while a check runs)
    check_desc: str  # e.g. "Layer7 check passed", "Layer7 invalid response"
    last_chk: str  # what the last check saw
    check_code: str = ""  # the reply code a layer-7 check got (221 after SMTP QUIT, 200 for HTTP)
    rise: int | None = None
    fall: int | None = None
    tracked: str = ""  # "be_pop3/mail01" when the server follows another one's checks
    backup: bool = False
    checking: bool = False  # a check was in flight when HAProxy answered ("* " before its status)

    @property
    def up(self) -> bool:
        return self.status == "UP"

    @property
    def down(self) -> bool:
        return self.status == "DOWN"


def _int(row: dict[str, str], key: str) -> int | None:
    return int(row[key]) if (row.get(key) or "").isdigit() else None


def server_states(show_stat: str) -> dict[tuple[str, str], ServerState]:
    """(backend, server) -> state, from the CSV HAProxy's runtime API answers to ``show stat``."""
    lines = [line for line in show_stat.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"not a 'show stat' answer: {show_stat[:200]!r}")
    rows = csv.DictReader([lines[0][2:], *lines[1:]])
    out = {}
    for row in rows:
        if row["svname"] in ("FRONTEND", "BACKEND"):
            continue
        out[(row["pxname"], row["svname"])] = ServerState(
            row["pxname"], row["svname"], row["status"], row["check_status"].lstrip("* "),
            row.get("check_desc") or "", row.get("last_chk") or "", row.get("check_code") or "",
            _int(row, "check_rise"), _int(row, "check_fall"), row.get("tracked") or "", row.get("bck") == "1",
            row["check_status"].startswith("*"))
    return out


def server_reached(states: dict[tuple[str, str], ServerState], node: str, backend: str, server: str,
                   up: bool) -> ServerState:
    """``backend/server``'s state if HAProxy on ``node`` reports it UP (or DOWN); NotYet otherwise."""
    state = states.get((backend, server))
    if state is None:
        raise NotYet(f"HAProxy on {node} has no server {backend}/{server}")
    if not (state.up if up else state.down):
        raise NotYet(f"{backend}/{server} is {state.status} ({state.check_status}: "
                     f"{state.check_desc or state.last_chk})")
    return state


def unsettled_servers(node: str, states: dict[tuple[str, str], ServerState]) -> list[str]:
    """One line per server HAProxy on ``node`` does not see fully UP ("UP 1/2" on its way,
    DOWN or MAINT), [] when every server is UP."""
    return [f"{node}: {backend}/{server} {st.status}"
            for (backend, server), st in states.items() if st.status != "UP"]
