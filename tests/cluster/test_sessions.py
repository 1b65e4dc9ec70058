"""A real session on every VIP, as a customer's mail client opens it from client01.

Mail sent in a test is read back in the same test, over IMAP FETCH and POP3
RETR, and its body compared with what was sent: exactly one copy, intact.
"""

from __future__ import annotations

import uuid

import pytest

from mailring.checks import NotYet
from mailring.polling.wait import eventually

DELIVERY_S = 15.0


@pytest.fixture(scope="module")
def owners(cluster, topology) -> dict[str, str]:
    status = cluster.status()
    expected = topology.expected_owners(cluster.carp_failed(status))
    assert {v: status.owner(v) for v in expected} == expected
    return expected


def port(topology, service: str) -> int:
    return topology.services[service].port


def other_vip(topology, owners: dict[str, str], vip: str) -> str:
    """The next VIP in the ring held by another server than ``vip``'s owner."""
    vips = [str(v.address) for v in topology.vips]
    later = vips[vips.index(vip) + 1:] + vips[:vips.index(vip)]
    return next(v for v in later if owners[v] != owners[vip])


def send(client, topology, vip: str) -> dict:
    """A message with a unique subject and body from the last user to the first, through ``vip``."""
    user, sender = topology.users[0], topology.users[-1]
    tag = uuid.uuid4().hex[:12]
    body = f"mailring session check {tag}\nsent through {vip}\n"
    sent = client.send_mail(vip, port(topology, "smtp"), sender.address, user.address, f"mailring-{tag}",
                            body)
    assert sent["ok"] and sent["data_code"] == 250 and sent.get("message_id"), sent
    return {"body": body, **sent}


def fetch(client, topology, protocol: str, host: str, sent: dict) -> dict:
    """Read ``sent`` back over ``protocol`` through ``host``: wait until it is there, then it must be
    there exactly once, with the body that was sent."""
    user = topology.users[0]

    def found() -> dict:
        read = client.pop3 if protocol == "pop3" else client.imap
        res = read(host, port(topology, protocol), user.address, user.password, message_id=sent["message_id"])
        if not (res["ok"] and res.get("bodies")):
            raise NotYet(f"{protocol} on {host}: {res}")
        return res

    res = eventually(found, DELIVERY_S, f"message {sent['message_id']} (queued as {sent.get('queue_id')}) "
                                        f"in {user.address}'s INBOX over {protocol} through {host}")
    copies = len(res["bodies"])
    assert copies == 1, f"{protocol} on {host}: {copies} copies of {sent['message_id']}"
    assert res["bodies"][0].strip() == sent["body"].strip(), (
        f"{protocol} on {host}: body of {sent['message_id']} is {res['bodies'][0]!r}, sent {sent['body']!r}")
    return res


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_smtp_banner_and_ehlo(client, topology, owners, vip, service):
    res = client.smtp(vip, port(topology, service), ehlo=f"{topology.client.name}.{topology.domain}")
    assert res["ok"], res
    assert res["banner_code"] == 220 and res["ehlo_code"] == 250
    assert owners[vip] in res["banner"], f"{vip}:{service} answered by {res['banner']!r}"
    if service == "submission":
        assert "STARTTLS" in res["features"]


def test_mail_accepted_on_one_vip_is_fetched_through_another(client, topology, owners, vip):
    sent = send(client, topology, vip)
    assert owners[vip] in sent["banner"], f"{vip} accepted the mail on {sent['banner']!r}"
    fetch(client, topology, "imap", other_vip(topology, owners, vip), sent)


def test_pop3_retr_returns_the_message_sent(client, topology, owners, vip):
    sent = send(client, topology, other_vip(topology, owners, vip))
    res = fetch(client, topology, "pop3", vip, sent)
    assert res["login_ok"] and owners[vip] in res["banner"], res


def test_imap_fetch_returns_the_message_sent(client, topology, owners, vip):
    sent = send(client, topology, other_vip(topology, owners, vip))
    res = fetch(client, topology, "imap", vip, sent)
    assert res["login_ok"] and owners[vip] in res["banner"], res


def test_http_serves_the_page_of_the_vips_owner(client, topology, owners, vip):
    res = client.http(vip, port(topology, "http"))
    assert res["ok"] and res["status"] == 200, res
    assert res["body"].strip() == f"webmail {owners[vip]}", res["body"]
