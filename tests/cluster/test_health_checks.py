"""HAProxy's health checks speak each protocol, at the topology's interval, and catch a broken daemon.

A check that only opens a TCP connection passes for any process that accepts
one. The checks here read the SMTP reply to EHLO, the POP3 +OK and IMAP * OK
greetings (then QUIT / LOGOUT) and the webmail's HTTP 200, so a listener that
accepts connections and answers garbage is taken out of service within
the time ``fall`` checks take (the first within the interval, the rest at the
fast interval that confirms a change), and the node's VIPs are served by the
other servers.
"""

from __future__ import annotations

import time

import pytest

from mailring.checks import NotYet
from mailring.checks.client_address import server_states
from mailring.checks.serving import check_deadline_s
from mailring.logparse import DovecotRecord
from mailring.polling.haproxy import servers_settled, wait_server
from mailring.polling.logs import LogCursor
from mailring.polling.wait import eventually, steadily
from mailring.render.context import haproxy_backend

MARGIN_S = 1.5  # the stop itself, the runtime API round trip, the poll
RECOVER_S = 15.0  # a restarted Postfix answers and HAProxy's rise checks pass
# every test here waits out several check intervals (seconds): run them among the long ones
pytestmark = pytest.mark.long
LOCAL_GAPS, BACKUP_GAPS = 4, 2  # intervals timed between the checks of a node's own HAProxy, another's
GAP_SLACK_S = 0.4  # a 20 ms poll and a log read through the node at each end of the timed span
STEADY_INTERVALS = 3  # every server's checks read over this many check intervals, all good


def interval_s(topology) -> float:
    return topology.haproxy.check_interval_ms / 1000


def checked_port(topology, service: str) -> int:
    """The daemon port HAProxy connects (and checks) for a service: its PROXY port when PROXY is on."""
    svc = topology.services[service]
    return svc.proxy_port if topology.proxy_protocol and svc.proxy_port else svc.port


def test_every_server_passes_a_layer7_check(cluster, topology, mail_node):
    def check() -> None:
        states = server_states(cluster.haproxy_command(mail_node, "show stat"))
        seen = set()
        for svc in topology.services.values():
            backend = haproxy_backend(svc.name)
            for node in topology.mail_nodes:
                st = states.get((backend, node.name))
                assert st is not None, f"HAProxy on {mail_node} has no server {backend}/{node.name}"
                if st.checking:  # its status and code are the previous check's, or 0: read again
                    raise NotYet(f"{backend}/{node.name} on {mail_node}: a check in flight")
                assert st.up, f"{backend}/{node.name} on {mail_node}: {st}"
                assert st.backup == (node.name != mail_node), f"{backend}/{node.name}: backup={st.backup}"
                if svc.tls:  # ends TLS, then reaches the same listener as its plain service
                    assert st.tracked == f"{haproxy_backend(svc.backend)}/{node.name}", st
                    continue
                assert st.check_status == "L7OK", f"{backend}/{node.name} on {mail_node}: {st}"
                assert (st.rise, st.fall) == (topology.haproxy.rise, topology.haproxy.fall), st
                want_code = {"smtp": "221", "http": "200"}.get(svc.protocol)  # QUIT's reply, the page's
                if want_code:
                    assert st.check_code == want_code, f"{backend}/{node.name}: {st}"
                seen.add(svc.protocol)
        assert seen == {s.protocol for s in topology.services.values()}

    # the lab may have just come up (this test runs among the first): its HAProxies started
    # before some peers' daemons listened and are still rising those backups (DOWN 1/2, L7OK)
    servers_settled(cluster, 2 * check_deadline_s(topology))
    # from then on a steady state: every read over several check intervals must be good (a read
    # that caught a check in flight is read again); one good read among bad ones must not pass
    poll_s = interval_s(topology) / 2
    deadline = 2 * check_deadline_s(topology) + STEADY_INTERVALS * interval_s(topology)
    steadily(check, 2 * STEADY_INTERVALS, deadline, f"every server L7OK on {mail_node}'s HAProxy",
             poll_s=poll_s)


def test_checks_run_at_the_topologys_intervals(cluster, topology):
    """Time the IMAP checks one node's Dovecot logs as they arrive, on this host: its own
    HAProxy's come at the check interval, another node's (it is that node's backup) at the
    backup interval."""
    target, other = topology.mail_nodes[1], topology.mail_nodes[0]
    h = topology.haproxy
    want = {target.name: (str(target.address), h.check_interval_ms / 1000, LOCAL_GAPS),
            other.name: (str(other.address), h.backup_ms / 1000, BACKUP_GAPS)}
    port = checked_port(topology, "imap")
    cursor = LogCursor(cluster, [(target.name, "dovecot")])
    seen: dict[str, list[float]] = {name: [] for name in want}

    def arrived() -> None:
        records = [r for r in cursor.records(target.name, "dovecot") if isinstance(r, DovecotRecord)
                   and r.lport == port and "no auth attempts" in r.message]
        now = time.monotonic()
        for name, (addr, _, _) in want.items():
            count = sum(1 for r in records if r.rip == addr)
            seen[name] += [now] * (count - len(seen[name]))
        short = [f"{len(seen[name])} of {gaps + 1} from {name}" for name, (_, _, gaps) in want.items()
                 if len(seen[name]) <= gaps]
        if short:
            raise NotYet(f"IMAP checks logged by Dovecot on {target.name}: {', '.join(short)}")

    deadline = max((gaps + 2) * interval for _, interval, gaps in want.values()) + 5
    eventually(arrived, deadline, f"IMAP checks from {target.name} and {other.name}", poll_s=0.02)
    for name, (_, interval, gaps) in want.items():
        # the first and the last seen: a read that caught two checks at once shortens one gap only
        mean = (seen[name][gaps] - seen[name][0]) / gaps
        assert abs(mean - interval) <= GAP_SLACK_S, (
            f"{name}'s IMAP checks of {target.name} came {mean:.2f} s apart over {gaps} gaps; "
            f"the topology's interval for them is {interval:.2f} s")


@pytest.mark.destructive
def test_a_listener_answering_garbage_is_taken_out_and_others_serve_its_vips(
        cluster, client, nemesis, topology):
    node = topology.mail_nodes[len(topology.mail_nodes) // 2]
    smtp = topology.services["smtp"]
    backend, port, addr = haproxy_backend(smtp.name), checked_port(topology, "smtp"), str(node.address)
    bound_s = topology.haproxy.all_down_within_s() + MARGIN_S
    # longer than `rise` passing checks take to bring a DOWN server back, plus one more check
    hold_s = topology.haproxy.up_within_s() + topology.haproxy.down_ms / 1000
    for other in topology.mail_nodes:
        wait_server(cluster, other.name, backend, node.name, up=True, deadline_s=RECOVER_S)
    # socat in Postfix's place on the address:port HAProxy checks; it ends when stop() closes stdin
    garbage = 'socat "TCP-LISTEN:$2,bind=$1,fork,reuseaddr" SYSTEM:"echo garbage" </dev/null & p=$!; ' \
              'cat >/dev/null; kill $p; wait $p'
    t_stop = time.monotonic()
    fault = nemesis.stop(node.name, "postfix")
    listener = cluster.start(node.name, ["sh", "-c", garbage, "sh", addr, str(port)])
    try:
        def answers_garbage() -> None:
            # read on the node itself: the packet filter keeps client01 off PROXY ports
            res = cluster.run(node.name, ["socat", "-T", "2", "-u", f"TCP:{addr}:{port}", "-"],
                              timeout=10)
            if res.stdout.strip() != "garbage":
                raise NotYet(f"{addr}:{port} from {node.name}: {res.stdout.strip()!r} {res}")

        eventually(answers_garbage, 10, f"a garbage listener on {node.name} {addr}:{port}")
        for other in topology.mail_nodes:  # every HAProxy of the ring takes it out
            left = bound_s - (time.monotonic() - t_stop)
            wait_server(cluster, other.name, backend, node.name, up=False, deadline_s=max(left, 0.1))

        def judged_at_layer7():
            st = server_states(cluster.haproxy_command(node.name, "show stat"))[(backend, node.name)]
            if not (st.down and st.check_status.startswith("L7") and "garbage" in st.last_chk):
                raise NotYet(f"{backend}/{node.name}: {st}")
            return st

        eventually(judged_at_layer7, 5 * interval_s(topology) + MARGIN_S,
                   f"HAProxy on {node.name} reading 'garbage' as a failed SMTP check")
        # a TCP-only check would bring it back after `rise` checks: it must stay DOWN
        since, seen = time.monotonic(), []

        def held_down() -> None:
            st = server_states(cluster.haproxy_command(node.name, "show stat"))[(backend, node.name)]
            seen.append(st.status)
            if time.monotonic() - since < hold_s:
                raise NotYet(f"watched {time.monotonic() - since:.1f} of {hold_s:.1f} s")

        eventually(held_down, hold_s + 5, "a garbage listener watched for rise + 1 checks")
        assert set(seen) == {"DOWN"}, f"{backend}/{node.name} left DOWN while answering garbage: {seen}"
        for vip in topology.vips_owned_by(node.name):
            res = client.smtp(vip.address, smtp.port)
            assert res["ok"] and res["ehlo_code"] == 250, f"SMTP on {vip.address}: {res}"
            served = next((n.name for n in topology.mail_nodes if n.name in res["banner"]), None)
            assert served not in (None, node.name), f"{vip.address}: {res['banner']!r}"
    finally:
        listener.stop()
        nemesis.heal(fault)
    for other in topology.mail_nodes:  # leave the ring as found: the node back in every HAProxy
        wait_server(cluster, other.name, backend, node.name, up=True, deadline_s=RECOVER_S)
