"""Whose address do the daemons log? client01's with PROXY on, the HAProxy node's with PROXY off.

Each test opens a real session through a VIP from client01 (SMTP with a
message, submission with STARTTLS + AUTH and a message, POP3 and IMAP logins,
and POP3S/IMAPS ended on HAProxy), finds HAProxy's line for it on the VIP's
owner by client01's source port, and then the serving daemon's line (Postfix
by queue id, Dovecot by the user's login). With PROXY on the daemon must log
client01's address and source port; with PROXY off (a second cluster from
fixtures/topology-noproxy.yaml) it logs the HAProxy node's address and the
source port HAProxy's own line names (%bi:%bp), which is how an operator joins
the two. The destructive tests stop the owner's daemon so a backup node serves,
or crash the owner so a backup holds the VIP (CARP failover). Which node holds a
VIP always comes from the model, never from the cluster's own report.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mailring.checks.client_address import (
    check_logged_client,
    dovecot_login,
    expected_peer,
    haproxy_session,
    postfix_session,
)
from mailring.client import Client
from mailring.logparse import HaproxyRecord
from mailring.mailflow import take_queued
from mailring.nemesis import Nemesis
from mailring.polling.convergence import converge
from mailring.polling.haproxy import wait_server
from mailring.polling.logs import LogCursor
from mailring.polling.wait import eventually
from mailring.render.context import haproxy_backend

NOPROXY = Path(__file__).resolve().parents[2] / "fixtures" / "topology-noproxy.yaml"
NOPROXY_LAB = "np"  # the lab suffix test_domino asks for too: one second lab for both
SERVICES = ("smtp", "submission", "pop3", "imap", "pop3s", "imaps")
PLAIN = ("smtp", "submission", "pop3", "imap")
LOG_DEADLINE_S = 10.0  # a log line is written when the session ends; HAProxy's when both sides closed
RECOVER_S = 15.0  # a restarted daemon answers and HAProxy's rise checks pass


# The PROXY-off design runs as a second cluster beside the first: cheap as namespaces,
# but as VMs it would need a second set reusing the same addresses.
LAB_ONLY = pytest.mark.lab_only("a second cluster (PROXY off) beside the first; as VMs it "
                                "would reuse the same addresses")
ONE_WORKER = pytest.mark.xdist_group("noproxy")  # one second lab for them all, not one per worker


def second_cluster(test):
    """Both marks: lab-only, and in the worker that runs the other tests on the PROXY-off lab."""
    return ONE_WORKER(LAB_ONLY(test))


@pytest.fixture(scope="module")
def noproxy(cluster_factory):
    """A second cluster with proxy_protocol off: the article's cluster as it ran, shared with
    test_domino's first design (the factory takes it down after the last test that uses it,
    before the failover tests time anything)."""
    np = cluster_factory(NOPROXY, NOPROXY_LAB)
    assert not np.topology.proxy_protocol
    return np


def daemon_of(topo, service: str) -> str:
    svc = topo.services[service]
    return svc.daemon or topo.services[svc.backend].daemon


def open_session(client: Client, topo, service: str, host: str) -> dict[str, Any]:
    """One real session of ``service`` through ``host``; its result (with local_port)."""
    svc = topo.services[service]
    alice, bob = topo.users[0], topo.users[-1]
    subject = f"mailring-addr-{uuid.uuid4().hex[:10]}"
    if service == "smtp":
        res = client.send_mail(host, svc.port, bob.address, alice.address, subject, "client address")
    elif service == "submission":
        res = client.send_mail(host, svc.port, alice.address, bob.address, subject, "client address",
                               starttls=True, login={"user": alice.address, "password": alice.password})
    elif svc.protocol == "pop3":
        res = client.pop3(host, svc.port, alice.address, alice.password, tls=svc.tls)
    else:
        res = client.imap(host, svc.port, alice.address, alice.password, tls=svc.tls)
    assert res["ok"] and res.get("local_port"), f"{service} session through {host}: {res}"
    return res


def check_session(cluster, client: Client, service: str, vip: str, owner: str,
                  serving: str | None = None, not_serving: str | None = None) -> HaproxyRecord:
    """Open a session through ``vip`` (held by ``owner``, as the model says), find both log
    lines, judge the logged client; return HAProxy's line."""
    topo = cluster.topology
    daemon = daemon_of(topo, service)
    cursor = LogCursor(cluster, [(owner, "haproxy")] + [(n.name, daemon) for n in topo.mail_nodes])
    res = open_session(client, topo, service, vip)
    me, port = topo.client, res["local_port"]
    hop = eventually(lambda: haproxy_session(cursor.records(owner, "haproxy"), str(me.address), port,
                                             backend=haproxy_backend(service)),
                     LOG_DEADLINE_S, f"HAProxy on {owner} logging the {service} session from port {port}")
    server = hop.server
    assert server in topo.nodes, f"HAProxy on {owner} sent the session to {server}: {hop.raw}"
    if serving is not None:
        assert server == serving, f"{service} through {vip} went to {server}, expected {serving}"
    if not_serving is not None:
        assert server != not_serving, f"{service} through {vip} still went to {server}: {hop.raw}"
    assert server in res.get("banner", ""), f"HAProxy says {server} served; greeting: {res['banner']!r}"
    want = expected_peer(topo.proxy_protocol, (me.name, str(me.address), port), hop, owner)
    if not topo.proxy_protocol:  # the article's pain: the daemon sees HAProxy, never the client
        assert want.address == str(topo.nodes[owner].address), hop.raw

    def served_line():
        records = cursor.records(server, daemon)
        if daemon == "postfix":
            return postfix_session(records, queue_id=res["queue_id"])
        return dovecot_login(records, topo.users[0].address)

    what = f"queued as {res.get('queue_id')}" if daemon == "postfix" else f"login of {topo.users[0].address}"
    line = eventually(served_line, LOG_DEADLINE_S, f"{daemon} on {server} logging the {service} session "
                                                    f"({what})")
    check_logged_client(daemon, server, line, service.upper(), port, want)
    return hop


def backup_case(cluster, nemesis, client: Client, service: str) -> None:
    """Stop the daemon behind ``service`` on a VIP's owner: a backup serves, and logs as it should."""
    topo = cluster.topology
    vip = topo.vips[0]
    owner, daemon, svc = topo.expected_owner(vip), daemon_of(topo, service), topo.services[service]
    backend = haproxy_backend(svc.backend if svc.tls else service)  # a TLS backend tracks this one
    fall_s = topo.haproxy.down_within_s()
    converge(cluster, failed=set())
    fault = nemesis.stop(owner, daemon)
    try:
        wait_server(cluster, owner, backend, owner, up=False, deadline_s=fall_s + 5)
        check_session(cluster, client, service, str(vip.address), owner, not_serving=owner)
    finally:
        nemesis.heal(fault)
    wait_server(cluster, owner, backend, owner, up=True, deadline_s=RECOVER_S)


# --- PROXY on: the session's cluster ------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_daemon_logs_the_client_through_every_vip(cluster, client, topology, vip, service):
    if not topology.proxy_protocol:
        pytest.skip(f"{topology.path} has proxy_protocol off; the noproxy tests cover it")
    owner = topology.expected_owner(vip)
    check_session(cluster, client, service, vip, owner, serving=owner)


@pytest.mark.destructive
@pytest.mark.parametrize("service", SERVICES)
def test_backup_node_logs_the_client_too(cluster, client, nemesis, topology, service):
    backup_case(cluster, nemesis, client, service)


@pytest.mark.destructive
def test_after_carp_failover_the_new_holder_logs_the_client(cluster, client, nemesis, topology):
    """The first VIP's owner crashes: its first backup holds the VIP and serves every service."""
    vip = topology.vips[0]
    crashed = topology.expected_owner(vip)
    holder = topology.expected_owner(vip, {crashed})
    converge(cluster, failed=set())
    nemesis.crash(crashed)
    converge(cluster, failed={crashed})
    for service in SERVICES:
        check_session(cluster, client, service, str(vip.address), holder, serving=holder)


# --- PROXY off: a second cluster --------------------------------------------------------
@second_cluster
@pytest.mark.parametrize("service", SERVICES)
def test_without_proxy_the_daemon_logs_haproxy_and_haproxy_links_the_client(noproxy, service):
    client = Client(noproxy)
    by_owner: dict[str, list[str]] = {}
    for vip in noproxy.topology.vips:
        by_owner.setdefault(noproxy.topology.expected_owner(vip), []).append(str(vip.address))

    def owners_vips(owner: str) -> None:
        for vip in by_owner[owner]:
            check_session(noproxy, client, service, vip, owner, serving=owner)

    # owners side by side, each owner's VIPs one after another: a Dovecot login is found by
    # its user on the serving node, so a node serves one of these sessions at a time
    with ThreadPoolExecutor(max_workers=len(by_owner)) as pool:
        for done in [pool.submit(owners_vips, owner) for owner in by_owner]:
            done.result()


@second_cluster
@pytest.mark.destructive
@pytest.mark.parametrize("service", PLAIN)
def test_without_proxy_a_backup_logs_the_owners_haproxy(noproxy, service):
    with Nemesis(noproxy) as nem:
        backup_case(noproxy, nem, Client(noproxy), service)
    converge(noproxy, failed=set())


@second_cluster
def test_without_proxy_everyone_relays_the_open_relay_side_of_the_dilemma(noproxy):
    """The article's design, PROXY off: every client seems to come from the VIP holder, a mail
    node, and the mail nodes are in mynetworks, so the customer relays, and so does the
    stranger: the customer/stranger split of test_relay.py does not hold. (Leaving the mail
    nodes out of mynetworks would be the other side: then customers could not relay.)"""
    topo = noproxy.topology
    me = topo.client
    customers = [str(a) for a in (me.address, *me.aliases) if topo.is_customer(a)]
    strangers = [str(a) for a in (me.address, *me.aliases) if not topo.is_customer(a)]
    if not customers or not strangers:
        pytest.skip(f"{topo.path}: {me.name} needs a customer address and a stranger one")
    client = Client(noproxy)
    relayed = []
    for vip in (str(v.address) for v in topo.vips):
        for who, source in (("customer", customers[0]), ("stranger", strangers[0])):
            res = client.send_mail(vip, topo.services["smtp"].port, topo.users[0].address,
                                   "someone@relay-test.example", "relay?", "an open relay",
                                   source=source)
            if res.get("queue_id"):
                take_queued(noproxy, topo.expected_owner(vip), res["queue_id"])
            relayed.append((vip, who, res.get("rcpt_code")))
    refused = [r for r in relayed if r[2] != 250]
    assert not refused, f"PROXY off no longer relays for everyone: {refused}"
