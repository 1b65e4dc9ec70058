"""Finding a probe's session in real log lines and judging the client address logged for it."""

from __future__ import annotations

import pytest

from mailring.checks import CheckError, NotYet
from mailring.checks.client_address import (
    ClientAddressError,
    Peer,
    SessionNotFound,
    check_logged_client,
    dovecot_login,
    expected_peer,
    haproxy_session,
    postfix_session,
    server_reached,
    server_states,
    unsettled_servers,
)
from mailring.logparse import parse_lines

CLIENT, PORT = "192.168.56.100", 41492
OWNER, HA = "mail02", "192.168.56.12"  # the VIP owner, whose HAProxy took the connection
BACKUP_ADDR = "192.168.56.13"

# HAProxy on the VIP owner: a health-check-free log, one SMTP session sent to a backup server
# (mail03), a TLS session, and a session to a server that refused (no %bi:%bp).
HAPROXY = f"""\
[WARNING]  (7) : Server be_smtp/mail02 is DOWN, reason: Layer4 connection problem, info: "Connection refused"
{CLIENT}:43924 [25/Nov/2026:20:04:40.307] fe_smtp be_smtp/mail02 1/0/10 50 CD 5/1/0/0/0 0/0 {HA}:59242
{CLIENT}:{PORT} [25/Nov/2026:20:04:50.688] fe_smtp be_smtp/mail03 1/0/266 319 -- 1/1/0/0/0 0/0 {HA}:38602
{CLIENT}:42340 [25/Nov/2026:20:04:40.334] fe_imaps~ be_imaps/mail02 361/0/697 167 -- 3/1/0/0/0 0/0 {HA}:41520
{CLIENT}:50836 [25/Nov/2026:20:04:40.341] fe_http be_http/mail02 0/0/0/0/0 200 138 - - ---- 7/1/0/0/0 0/0 \
{HA}:33418 "GET / HTTP/1.0"
{CLIENT}:40000 [25/Nov/2026:20:04:41.000] fe_smtp be_smtp/mail04 -1/-1/3001 0 SC 1/1/0/0/3 0/0 -:-
"""

# Postfix on mail03 with PROXY on: health checks (from HAProxy nodes, PROXY v2 LOCAL) around
# the client's session, which logs the client's own address and source port.
POSTFIX_PROXY_ON = f"""\
Nov 25 20:04:50 mail03 postfix/smtp-proxy/smtpd[262]: connect from unknown[192.168.56.15]:{PORT}
Nov 25 20:04:50 mail03 postfix/smtp-proxy/smtpd[262]: disconnect from unknown[192.168.56.15]:{PORT} ehlo=1 \
quit=1 commands=2
Nov 25 20:04:50 mail03 postfix/smtp-proxy/smtpd[298]: connect from unknown[{CLIENT}]:{PORT}
Nov 25 20:04:50 mail03 postfix/smtp-proxy/smtpd[298]: E6EE0514120: client=unknown[{CLIENT}]:{PORT}
Nov 25 20:04:50 mail03 postfix/cleanup[678]: E6EE0514120: message-id=<2026112520.45@client01.ring.test>
Nov 25 20:04:50 mail03 postfix/smtp-proxy/smtpd[298]: disconnect from unknown[{CLIENT}]:{PORT} ehlo=1 mail=1 \
rcpt=1 data=1 quit=1 commands=5
"""

# The same session with PROXY off: Postfix sees HAProxy's connection from the VIP owner.
POSTFIX_PROXY_OFF = f"""\
Nov 25 20:07:51 mail03 postfix/smtp/smtpd[985]: connect from unknown[{HA}]:38602
Nov 25 20:07:51 mail03 postfix/smtp/smtpd[985]: 89224514006: client=unknown[{HA}]:38602
Nov 25 20:07:51 mail03 postfix/smtp/smtpd[985]: disconnect from unknown[{HA}]:38602 ehlo=1 mail=1 \
rcpt=1 data=1 quit=1 commands=5
"""

DOVECOT = f"""\
Nov 25 20:27:14 imap-login: Info: Disconnected: Aborted login by logging out (no auth attempts in 0 secs): \
user=<>, rip=192.168.56.14, rport=55766, lip={BACKUP_ADDR}, lport=10143, session=<j3UMpx9h1tnAqDgO>
Nov 25 20:08:09 imap-login: Info: Login: user=<alice@ring.test>, method=PLAIN, rip={HA}, \
rport=42408, lip={BACKUP_ADDR}, lport=143, mpid=1493, secured, session=<2UjFYh9hqKXAqDgM>
Nov 25 20:08:10 imap-login: Info: Login: user=<alice@ring.test>, method=PLAIN, rip={CLIENT}, rport={PORT}, \
lip=192.168.56.103, lport=143, mpid=1494, session=<2UjFYh9hqKXAqDgN>
"""

CLIENT01 = ("client01", CLIENT, PORT)


def test_haproxy_session_links_the_client_port_to_server_and_backend_source() -> None:
    hop = haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, PORT)
    assert (hop.backend, hop.server) == ("be_smtp", "mail03")
    assert (hop.backend_source_addr, hop.backend_source_port) == (HA, 38602)
    http = haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, 50836, backend="be_http")
    assert (http.status, http.backend_source_port) == (200, 33418)


def test_haproxy_session_not_logged_is_session_not_found() -> None:
    with pytest.raises(SessionNotFound, match=f"no HAProxy session from {CLIENT}:1234 among 5"):
        haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, 1234)
    with pytest.raises(SessionNotFound):
        haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, PORT, backend="be_submission")
    assert issubclass(SessionNotFound, AssertionError) and issubclass(SessionNotFound, NotYet)  # polled again


def test_proxy_on_the_daemon_must_log_the_client() -> None:
    records = parse_lines("postfix", POSTFIX_PROXY_ON)
    hop = haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, PORT)
    want = expected_peer(True, CLIENT01, hop, OWNER)
    assert want == Peer("client01", CLIENT, PORT)
    line = postfix_session(records, queue_id="E6EE0514120")
    check_logged_client("postfix", "mail03", line, "SMTP", PORT, want)
    # by port alone, the newest connect from that port is the client's, not the earlier check
    assert postfix_session(records, client_port=PORT).pid == 298


def test_proxy_off_the_daemon_logs_haproxy_and_the_check_says_so() -> None:
    hop = haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, PORT)
    line = postfix_session(parse_lines("postfix", POSTFIX_PROXY_OFF), queue_id="89224514006")
    want = expected_peer(False, CLIENT01, hop, OWNER)
    assert (want.name, want.address, want.port) == (OWNER, HA, 38602)
    check_logged_client("postfix", "mail03", line, "SMTP", PORT, want)
    with pytest.raises(ClientAddressError) as err:  # what PROXY on would have demanded
        check_logged_client("postfix", "mail03", line, "SMTP", PORT,
                            expected_peer(True, CLIENT01, hop, OWNER))
    assert str(err.value).startswith(
        f"postfix on mail03 logged client {HA} for the SMTP session from port {PORT}, "
        f"expected client01's {CLIENT}")


def test_a_wrong_port_is_named_too() -> None:
    hop = haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, PORT)
    line = postfix_session(parse_lines("postfix", POSTFIX_PROXY_OFF), queue_id="89224514006")
    moved = Peer(OWNER, HA, 40000, "HAProxy, PROXY off")
    with pytest.raises(ClientAddressError, match="logged client port 38602 .* expected 40000"):
        check_logged_client("postfix", "mail03", line, "SMTP", PORT, moved)
    assert hop.server == "mail03"


def test_haproxy_without_backend_source_cannot_be_correlated() -> None:
    hop = haproxy_session(parse_lines("haproxy", HAPROXY), CLIENT, 40000)
    assert hop.server == "mail04" and hop.backend_source_addr is None
    with pytest.raises(CheckError, match="no backend source"):
        expected_peer(False, ("client01", CLIENT, 40000), hop, OWNER)


def test_dovecot_login_is_found_by_user_and_remote_port() -> None:
    records = parse_lines("dovecot", DOVECOT)
    on = dovecot_login(records, "alice@ring.test", PORT)
    assert (on.rip, on.lip) == (CLIENT, "192.168.56.103")
    off = dovecot_login(records, "alice@ring.test", 42408)
    check_logged_client("dovecot", "mail03", off, "IMAP", 37450, Peer(OWNER, HA, 42408, "HAProxy"))
    with pytest.raises(ClientAddressError, match=f"dovecot on mail03 logged client {HA} for the "
                                                 f"IMAP session from port 37450, expected client01's"):
        check_logged_client("dovecot", "mail03", off, "IMAP", 37450, Peer("client01", CLIENT, 42408))
    with pytest.raises(SessionNotFound, match="among 2 logins"):
        dovecot_login(records, "bob@ring.test", PORT)


def test_postfix_session_needs_exactly_one_key() -> None:
    records = parse_lines("postfix", POSTFIX_PROXY_ON)
    with pytest.raises(ValueError):
        postfix_session(records)
    with pytest.raises(SessionNotFound, match="queue id 0000000000"):
        postfix_session(records, queue_id="0000000000")


SHOW_STAT = """\
# pxname,svname,qcur,status,bck,tracked,check_status,check_code,check_desc,last_chk,check_rise,check_fall,
fe_smtp,FRONTEND,,OPEN,,,,,,,,,
be_smtp,mail03,0,DOWN,1,,L7RSP,,Layer7 invalid response,garbage,2,2,
be_smtp,mail01,0,UP,0,,L7OK,221,Layer7 check passed,2.0.0 Bye,2,2,
be_smtp,mail02,0,UP 1/2,1,,* L7OK,221,Layer7 check passed,2.0.0 Bye,2,2,
be_smtp,BACKEND,0,UP,,,,,,,,,
be_imaps,mail01,0,UP,0,be_imap/mail01,,,,,,,
"""


def test_server_states_from_show_stat() -> None:
    states = server_states(SHOW_STAT)
    assert set(states) == {("be_smtp", "mail03"), ("be_smtp", "mail01"), ("be_smtp", "mail02"),
                           ("be_imaps", "mail01")}
    local = states[("be_smtp", "mail01")]
    assert (local.check_code, local.rise, local.fall, local.backup) == ("221", 2, 2, False)
    assert states[("be_imaps", "mail01")].tracked == "be_imap/mail01"
    assert states[("be_imaps", "mail01")].rise is None
    bad = states[("be_smtp", "mail03")]
    assert bad.down and not bad.up and bad.check_status == "L7RSP" and bad.last_chk == "garbage"
    assert states[("be_smtp", "mail01")].up
    going = states[("be_smtp", "mail02")]
    assert not going.up and not going.down and going.check_status == "L7OK"
    with pytest.raises(ValueError):
        server_states("Unknown command.\n")


def test_server_reached_and_unsettled_servers() -> None:
    states = server_states(SHOW_STAT)
    assert server_reached(states, "mail01", "be_smtp", "mail03", up=False).check_status == "L7RSP"
    assert server_reached(states, "mail01", "be_smtp", "mail01", up=True).up
    with pytest.raises(NotYet, match=r"be_smtp/mail02 is UP 1/2 \(L7OK: Layer7 check passed\)"):
        server_reached(states, "mail01", "be_smtp", "mail02", up=True)
    with pytest.raises(NotYet, match="HAProxy on mail01 has no server be_smtp/mail09"):
        server_reached(states, "mail01", "be_smtp", "mail09", up=False)
    assert unsettled_servers("mail01", states) == ["mail01: be_smtp/mail03 DOWN",
                                                   "mail01: be_smtp/mail02 UP 1/2"]
    assert unsettled_servers("mail01", {k: v for k, v in states.items() if v.up}) == []
