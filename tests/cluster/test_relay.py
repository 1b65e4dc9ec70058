"""Customers relay, strangers do not (PROXY on): the article's "SMTP (relay to the world)".

The topology's customer_networks hold client01's own address; its alias (a
second source address of the same host) is a stranger. On every VIP the
customer's mail to an outside domain is accepted (250) and waits in the VIP
owner's queue (nodes have no route off the lab; the test then deletes it),
the stranger's is refused (554), and submission with AUTH after STARTTLS
relays for both. The PROXY-off side (the article's design) is in
test_client_address.py, beside its second cluster.
"""

from __future__ import annotations

import uuid

import pytest

from mailring.mailflow import take_queued

# A reserved name (RFC 2606), never a cluster domain. The lab's resolver refuses every
# name outside the cluster's zone, so delivery is deferred ("try again") and the message
# stays queued; a .invalid name would get NXDOMAIN from unbound's built-in zone and bounce.
OUTSIDE = "relay-test.example"


def customer_and_stranger(topology) -> tuple[str, str]:
    """client01's customer address and a client01 address that is no customer."""
    me = topology.client
    addresses = [str(a) for a in (me.address, *me.aliases)]
    customers = [a for a in addresses if topology.is_customer(a)]
    strangers = [a for a in addresses if not topology.is_customer(a)]
    if not customers or not strangers:
        pytest.skip(f"{topology.path}: {me.name} needs an address in customer_networks and one "
                    f"(an alias) outside them; it has {addresses}")
    return customers[0], strangers[0]


def relay(client, topology, vip: str, source: str, submission: bool = False) -> dict:
    """Mail from ``source`` through ``vip`` to someone at an outside domain."""
    svc = topology.services["submission" if submission else "smtp"]
    user = topology.users[0]
    kw = {"starttls": True, "login": {"user": user.address, "password": user.password}} if submission else {}
    return client.send_mail(vip, svc.port, user.address, f"someone@{OUTSIDE}",
                            f"mailring-relay-{uuid.uuid4().hex[:10]}", "relay?", source=source, **kw)


def accepted_and_queued(cluster, topology, vip: str, res: dict, who: str) -> None:
    """250 for the outside recipient, and the message waits in the VIP owner's queue."""
    assert res["ok"] and res.get("rcpt_code") == 250 and res.get("queue_id"), (
        f"{vip} did not relay for {who}: {res}")
    owner = topology.expected_owner(vip)
    entry = take_queued(cluster, owner, res["queue_id"])
    assert entry is not None, f"{vip}: {res['queue_id']} ({who}) is not in {owner}'s queue"
    rcpts = [r.get("address") for r in entry.get("recipients", [])]
    assert rcpts == [f"someone@{OUTSIDE}"], entry


def test_a_customer_relays_to_an_outside_domain(cluster, client, topology, vip):
    if not topology.proxy_protocol:
        pytest.skip(f"{topology.path} has proxy_protocol off; test_client_address.py covers it")
    customer, _ = customer_and_stranger(topology)
    accepted_and_queued(cluster, topology, vip, relay(client, topology, vip, customer),
                        f"the customer {customer}")


def test_a_stranger_may_not_relay(client, topology, vip):
    if not topology.proxy_protocol:
        pytest.skip(f"{topology.path} has proxy_protocol off; test_client_address.py covers it")
    _, stranger = customer_and_stranger(topology)
    res = relay(client, topology, vip, stranger)
    assert not res["ok"] and res.get("rcpt_code") == 554, f"{vip} relayed for the stranger {stranger}: {res}"


def test_submission_with_auth_after_starttls_relays_for_everyone(cluster, client, topology, vip):
    for source in customer_and_stranger(topology):
        res = relay(client, topology, vip, source, submission=True)
        assert res.get("login_ok") and res.get("tls_version"), f"{vip} from {source}: {res}"
        accepted_and_queued(cluster, topology, vip, res, f"{source} after AUTH")
