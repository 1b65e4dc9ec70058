"""A real session on every VIP, as a customer's mail client opens it from client01."""

from __future__ import annotations

import uuid

import pytest

from mailring.checks.wait import NotYet, eventually


@pytest.fixture(scope="module")
def owners(cluster, topology) -> dict[str, str]:
    status = cluster.status()
    expected = topology.expected_owners(cluster.carp_failed(status))
    assert {v: status.owner(v) for v in expected} == expected
    return expected


def port(topology, service: str) -> int:
    return topology.services[service].port


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_smtp_banner_and_ehlo(client, topology, owners, vip, service):
    res = client.smtp(vip, port(topology, service), ehlo=f"{topology.client.name}.{topology.domain}")
    assert res["ok"], res
    assert res["banner_code"] == 220 and res["ehlo_code"] == 250
    assert owners[vip] in res["banner"], f"{vip}:{service} answered by {res['banner']!r}"
    if service == "submission":
        assert "STARTTLS" in res["features"]


def test_mail_accepted_on_one_vip_is_read_through_another(client, topology, owners, vip):
    user = topology.users[0]
    sender = topology.users[-1]
    subject = f"mailring-{uuid.uuid4().hex[:12]}"
    sent = client.send_mail(vip, port(topology, "smtp"), sender.address, user.address, subject,
                            "sent through one VIP, read through another")
    assert sent["ok"] and sent["data_code"] == 250, sent
    vips = [str(v.address) for v in topology.vips]
    later = vips[vips.index(vip) + 1:] + vips[:vips.index(vip)]
    other = next(v for v in later if owners[v] != owners[vip])  # read on another server

    def found() -> dict:
        res = client.imap(other, port(topology, "imap"), user.address, user.password,
                          search_subject=subject)
        if not (res["ok"] and res.get("found")):
            raise NotYet(f"IMAP on {other}: {res}")
        return res

    eventually(found, 15, f"message {subject} (queued as {sent.get('queue_id')}) in {user.address}'s INBOX")


def test_pop3_login_and_stat(client, topology, owners, vip):
    user = topology.users[0]
    res = client.pop3(vip, port(topology, "pop3"), user.address, user.password)
    assert res["ok"] and res["login_ok"], res
    assert res["count"] >= 0 and owners[vip] in res["banner"]


def test_imap_login_and_select_inbox(client, topology, owners, vip):
    user = topology.users[0]
    res = client.imap(vip, port(topology, "imap"), user.address, user.password)
    assert res["ok"] and res["login_ok"], res
    assert res["exists"] >= 0 and owners[vip] in res["banner"]


def test_http_serves_the_page_of_the_vips_owner(client, topology, owners, vip):
    res = client.http(vip, port(topology, "http"))
    assert res["ok"] and res["status"] == 200, res
    assert res["body"].strip() == f"webmail {owners[vip]}", res["body"]


OUTSIDE = "relay-test.invalid"  # a reserved name: never a cluster domain, never resolvable


def test_relay_to_another_domain_is_refused(client, topology, vip):
    """PROXY on: Postfix sees client01's own address, which is not in mynetworks."""
    sender = topology.users[0].address
    res = client.send_mail(vip, port(topology, "smtp"), sender, f"someone@{OUTSIDE}", "relay?", "no")
    assert not res["ok"] and res.get("rcpt_code") == 554, f"{vip} relayed for client01: {res}"
