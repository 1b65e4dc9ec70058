"""Log line parsers: realistic Postfix, Dovecot and HAProxy lines, proxy on and off."""

from __future__ import annotations

import pytest

from mailring.logparse import (
    DovecotRecord,
    HaproxyRecord,
    OtherRecord,
    PostfixRecord,
    parse_dovecot,
    parse_haproxy,
    parse_line,
    parse_lines,
    parse_postfix,
)

CLIENT = "192.168.56.100"
NODE = "192.168.56.11"


# --- postfix -----------------------------------------------------------------
def pf(line: str) -> PostfixRecord:
    rec = parse_postfix(line)
    assert rec is not None, line
    return rec


def test_postfix_connect_proxy_on_logs_the_client() -> None:
    rec = pf(f"Nov 25 19:40:01 mail01 postfix/smtpd[123]: connect from unknown[{CLIENT}]")
    assert (rec.time, rec.host, rec.program, rec.pid) == ("Nov 25 19:40:01", "mail01", "smtpd", 123)
    assert (rec.event, rec.client_host, rec.client_addr) == ("connect", "unknown", CLIENT)
    assert rec.client_port is None and rec.queue_id is None


def test_postfix_connect_proxy_off_logs_a_node_address() -> None:
    rec = pf(f"Nov  5 09:01:02 mail02 postfix/smtpd-proxy[77]: connect from "
             f"mail01.ring.test[{NODE}]")
    assert rec.program == "smtpd-proxy"
    assert (rec.event, rec.client_host, rec.client_addr) == ("connect", "mail01.ring.test", NODE)


def test_postfix_client_line_carries_queue_id_and_port() -> None:
    rec = pf(f"Nov 25 19:40:01 mail01 postfix/smtpd[123]: 1A2B3C4D: client=unknown[{CLIENT}]:40211"
             ", sasl_method=PLAIN, sasl_username=alice@ring.test")
    assert (rec.event, rec.queue_id, rec.client_addr, rec.client_port) == (
        "client", "1A2B3C4D", CLIENT, 40211)


def test_postfix_long_queue_id() -> None:
    rec = pf(f"Nov 25 19:40:01 mail01 postfix/smtpd[9]: 4Ws9Z02Wgxz1pq: client=unknown[{NODE}]")
    assert rec.queue_id == "4Ws9Z02Wgxz1pq" and rec.client_addr == NODE


def test_postfix_iso_timestamp_and_disconnect() -> None:
    rec = pf(f"2026-11-25T19:40:01.123456+00:00 mail03 postfix/smtpd[55]: disconnect from "
             f"unknown[{CLIENT}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
    assert rec.time == "2026-11-25T19:40:01.123456+00:00" and rec.host == "mail03"
    assert (rec.event, rec.client_addr) == ("disconnect", CLIENT)


def test_postfix_postscreen_connect_proxy_off() -> None:
    rec = pf(f"Nov 25 19:40:01 mail01 postfix/postscreen[88]: CONNECT from [{NODE}]:40211 "
             f"to [{NODE}]:10025")
    assert (rec.program, rec.event, rec.client_host) == ("postscreen", "connect", None)
    assert (rec.client_addr, rec.client_port) == (NODE, 40211)


def test_postfix_postscreen_connect_proxy_on() -> None:
    rec = pf(f"Nov 25 19:40:01.654321 mail01 postfix/postscreen[88]: CONNECT from [{CLIENT}]:43210"
             " to [192.168.56.101]:25")
    assert (rec.event, rec.client_addr, rec.client_port) == ("connect", CLIENT, 43210)


def test_postfix_other_messages_are_parsed_as_other() -> None:
    rec = pf("Nov 25 19:40:01 mail01 postfix/smtpd[123]: warning: hostname unknown does not "
             "resolve to address 192.168.56.100")
    assert rec.event == "other" and rec.queue_id is None
    rec = pf("Nov 25 19:40:01 mail01 postfix/smtpd[123]: NOQUEUE: reject: RCPT from "
             "unknown[1.2.3.4]")
    assert rec.event == "other" and rec.queue_id is None
    rec = pf("Nov 25 19:40:02 mail01 postfix/cleanup[124]: 1A2B3C4D: message-id=<x@ring.test>")
    assert (rec.program, rec.event, rec.queue_id) == ("cleanup", "other", "1A2B3C4D")


def test_postfix_non_postfix_line_is_none() -> None:
    assert parse_postfix("Nov 25 19:40:01 mail01 postfix-script[1]: starting the Postfix") is None


# --- dovecot -----------------------------------------------------------------
def dc(line: str) -> DovecotRecord:
    rec = parse_dovecot(line)
    assert rec is not None, line
    return rec


def test_dovecot_imap_login_proxy_on() -> None:
    rec = dc(f"Nov 25 19:40:01 imap-login: Info: Login: user=<alice@ring.test>, method=PLAIN, "
             f"rip={CLIENT}, lip=192.168.56.101, mpid=123, session=<abcDEF12>")
    assert (rec.time, rec.program, rec.level, rec.event) == (
        "Nov 25 19:40:01", "imap-login", "Info", "Login")
    assert (rec.user, rec.rip, rec.lip, rec.session) == (
        "alice@ring.test", CLIENT, "192.168.56.101", "abcDEF12")
    assert rec.rport is None and rec.lport is None
    assert rec.message.startswith("Login: user=<alice@ring.test>")


def test_dovecot_pop3_login_proxy_off_with_ports() -> None:
    rec = dc(f"Nov 25 19:40:01 pop3-login: Info: Login: user=<bob@ring.test>, method=PLAIN, "
             f"rip={NODE}, lip={NODE}, rport=40211, lport=10110, mpid=9, TLS, session=<x>")
    assert (rec.program, rec.user, rec.rip, rec.rport, rec.lport) == (
        "pop3-login", "bob@ring.test", NODE, 40211, 10110)


def test_dovecot_session_process_and_failure() -> None:
    rec = dc("Nov 25 19:40:09 imap(alice@ring.test)<4321><abcDEF12>: Info: Disconnected: "
             "Logged out in=52 out=733")
    assert (rec.program, rec.user, rec.event) == ("imap", "alice@ring.test", "Disconnected")
    rec = dc(f"Nov 25 19:40:01 imap-login: Info: Disconnected (auth failed, 1 attempts in 2 secs):"
             f" user=<alice@ring.test>, method=PLAIN, rip={CLIENT}, lip=192.168.56.101, "
             "session=<q>")
    assert (rec.event, rec.user, rec.rip) == ("Disconnected", "alice@ring.test", CLIENT)
    rec = dc("Nov 25 19:40:01 lmtp(777): Error: something broke")
    assert (rec.program, rec.level, rec.user) == ("lmtp", "Error", None)


def test_dovecot_syslog_prefix_and_iso_time() -> None:
    rec = dc(f"Nov 25 19:40:01 mail01 dovecot[99]: imap-login: Login: user=<a@ring.test>, "
             f"rip={CLIENT}, lip={NODE}")
    assert (rec.program, rec.level, rec.rip) == ("imap-login", None, CLIENT)
    rec = dc(f"2026-11-25T19:40:01+00:00 pop3-login: Info: Login: user=<a@ring.test>, rip={NODE}")
    assert rec.time == "2026-11-25T19:40:01+00:00" and rec.rip == NODE


# --- haproxy -----------------------------------------------------------------
def ha(line: str) -> HaproxyRecord:
    rec = parse_haproxy(line)
    assert rec is not None, line
    return rec


def test_haproxy_tcplog() -> None:
    rec = ha(f"{CLIENT}:43210 [25/Nov/2026:19:40:01.123] smtp_192_168_56_101 smtp/local "
             "1/0/5 123 -- 1/1/0/0/0 0/0")
    assert (rec.client_addr, rec.client_port, rec.accept) == (CLIENT, 43210,
                                                              "25/Nov/2026:19:40:01.123")
    assert (rec.frontend, rec.backend, rec.server, rec.mode) == (
        "smtp_192_168_56_101", "smtp", "local", "tcp")
    assert (rec.timers, rec.bytes_read, rec.termination, rec.status) == ((1, 0, 5), 123, "--",
                                                                         None)


def test_haproxy_httplog_with_syslog_prefix() -> None:
    rec = ha(f"<134>Nov 25 19:40:01 haproxy[12]: {CLIENT}:43210 [25/Nov/2026:19:40:01.123] "
             'fe_http be_http/mail01 0/0/1/2/3 200 123 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"')
    assert (rec.mode, rec.status, rec.server, rec.request) == ("http", 200, "mail01",
                                                               "GET / HTTP/1.1")
    assert rec.timers == (0, 0, 1, 2, 3) and rec.termination == "----"


def test_haproxy_no_server_and_tls_frontend() -> None:
    rec = ha(f"{CLIENT}:5000 [25/Nov/2026:19:40:01.900] imaps~ imap/<NOSRV> -1/-1/0 0 SC "
             "3/3/0/0/0 0/0")
    assert (rec.frontend, rec.server, rec.timers, rec.termination) == (
        "imaps~", "<NOSRV>", (-1, -1, 0), "SC")
    rec = ha(f"<134>Nov 25 19:40:01 mail01 haproxy[12]: {CLIENT}:5001 [25/Nov/2026:19:40:02.000] "
             'https~ webmail/mail02 0/0/0/-1/1 503 217 - - SC-- 1/1/0/0/0 0/0 "GET /x HTTP/1.1"')
    assert (rec.status, rec.backend) == (503, "webmail")


# --- dispatcher --------------------------------------------------------------
def test_parse_lines_keeps_every_line() -> None:
    text = ("[NOTICE]   (1) : New worker (8) forked\n"
            f"{CLIENT}:1 [25/Nov/2026:19:40:01.123] a b/c 1/0/5 1 -- 1/1/0/0/0 0/0\n"
            "\n"
            "garbage that is not a log line\n")
    recs = parse_lines("haproxy", text)
    assert [type(r) for r in recs] == [OtherRecord, HaproxyRecord, OtherRecord]
    assert recs[0].raw == "[NOTICE]   (1) : New worker (8) forked"
    assert recs[0].event == "other" and recs[2].service == "haproxy"


def test_parse_lines_postfix_and_dovecot() -> None:
    pf_text = (f"Nov 25 19:40:01 mail01 postfix/smtpd[1]: connect from unknown[{CLIENT}]\n"
               "Nov 25 19:40:01 mail01 postfix/master[1]: daemon started\n"
               "not postfix at all\n")
    kinds = [(type(r).__name__, r.event) for r in parse_lines("postfix", pf_text)]
    assert kinds == [("PostfixRecord", "connect"), ("PostfixRecord", "other"),
                     ("OtherRecord", "other")]
    dv = parse_lines("dovecot", f"Nov 25 19:40:01 imap-login: Info: Login: user=<a>, rip={NODE}\n")
    assert isinstance(dv[0], DovecotRecord) and dv[0].rip == NODE


def test_parse_line_unknown_service() -> None:
    with pytest.raises(ValueError, match="no log parser"):
        parse_line("carp", "x")


# --- mailring's HAProxy format: %bi:%bp after %sq/%bq ------------------------
def test_haproxy_backend_source_tcp_http_and_none() -> None:
    tcp = parse_haproxy(f"{CLIENT}:43968 [25/Nov/2026:20:30:05.372] fe_imap be_imap/mail02 1/0/10 1066 -- "
                        f"1/1/0/0/0 0/0 {NODE}:37322")
    assert (tcp.server, tcp.backend_source_addr, tcp.backend_source_port) == ("mail02", NODE, 37322)
    http = parse_haproxy(f'{CLIENT}:50836 [25/Nov/2026:20:04:40.341] fe_http be_http/mail02 0/0/0/0/0 '
                         f'200 138 - - ---- 7/1/0/0/0 0/0 {NODE}:33418 "GET / HTTP/1.0"')
    assert (http.status, http.request, http.backend_source_port) == (200, "GET / HTTP/1.0", 33418)
    refused = parse_haproxy(f"{CLIENT}:40000 [25/Nov/2026:20:04:41.000] fe_smtp be_smtp/<NOSRV> -1/-1/3001 0 "
                            "SC 1/1/0/0/3 0/0 -:-")
    assert refused.backend_source_addr is None and refused.backend_source_port is None
    plain = parse_haproxy(f"{CLIENT}:40000 [25/Nov/2026:20:04:41.000] fe_smtp be_smtp/mail01 1/0/5 10 -- "
                          "1/1/0/0/0 0/0")
    assert plain.backend_source_addr is None and plain.termination == "--"


# --- FreeBSD: what the vagrant driver reads from a FreeBSD node's /var/log ---
# syslogd(8) writes "Mmm dd HH:MM:SS host prog[pid]: msg", the day padded with a
# space ("Dec  1"), without the <PRI> HAProxy sent to /var/run/log; Postfix's
# maillog_file and Dovecot's log_path write their own lines, as on Debian.
def test_haproxy_lines_as_freebsd_syslogd_files_them() -> None:
    tcp = parse_haproxy(f"Dec  1 15:47:30 mail01 haproxy[1234]: {CLIENT}:43968 "
                        f"[01/Dec/2026:15:47:30.372] fe_imap be_imap/mail02 1/0/10 1066 -- "
                        f"1/1/0/0/0 0/0 {NODE}:37322")
    assert (tcp.accept, tcp.client_addr, tcp.server) == ("01/Dec/2026:15:47:30.372", CLIENT, "mail02")
    assert (tcp.backend_source_addr, tcp.backend_source_port) == (NODE, 37322)
    http = parse_haproxy(f"Dec 12 09:01:02 mail03 haproxy[77]: {CLIENT}:50836 "
                         f"[12/Dec/2026:09:01:02.341] fe_https~ be_https/mail03 0/0/0/0/0 200 138 - - "
                         f'---- 7/1/0/0/0 0/0 {NODE}:33418 "GET / HTTP/1.1"')
    assert (http.frontend, http.status, http.backend_source_port) == ("fe_https~", 200, 33418)
    lines = parse_lines("haproxy", "Dec  1 15:47:29 mail01 haproxy[1234]: Proxy fe_imap started.\n"
                        f"Dec  1 15:47:30 mail01 haproxy[1234]: {CLIENT}:1 [01/Dec/2026:15:47:30.1] "
                        "fe_smtp be_smtp/mail01 1/0/5 10 -- 1/1/0/0/0 0/0 -:-\n")
    assert [type(r) for r in lines] == [OtherRecord, HaproxyRecord]


def test_postfix_and_dovecot_lines_on_freebsd() -> None:
    rec = pf(f"Dec  1 15:47:30 mail01 postfix/smtpd[5678]: connect from unknown[{CLIENT}]:40000")
    assert (rec.event, rec.client_addr, rec.client_port) == ("connect", CLIENT, 40000)
    dv = parse_dovecot(f"Dec  1 15:47:30 imap-login: Info: Login: user=<alice@ring.test>, "
                       f"method=PLAIN, rip={CLIENT}, rport=40001, lip={NODE}, lport=10143, mpid=901, "
                       "session=<abc>")
    assert dv is not None and (dv.event, dv.rip, dv.rport, dv.lport) == ("Login", CLIENT, 40001, 10143)
