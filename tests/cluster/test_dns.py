"""DNS from the client's point of view: round robin over all VIPs, each first in turn, TTL from the zone."""

from __future__ import annotations

from collections import Counter

import pytest

from mailring.client import dns_request


@pytest.fixture(scope="module")
def names(topology) -> list[str]:
    return list(topology.dns.fqdns)


def test_every_name_resolves_to_all_vips_through_the_clients_resolver(client, topology, names):
    want = sorted(str(v.address) for v in topology.vips)
    answers = client.each([dns_request(name) for name in names])  # independent queries, at once
    for name, res in zip(names, answers, strict=True):  # no server: client01's own resolv.conf (Unbound)
        assert res["ok"], res
        answer = res["answers"][0]
        label = name.split(".")[0]
        expected = sorted(str(a) for a in topology.dns.records[label])
        assert sorted(answer["addresses"]) == expected == want, name
        assert 0 < answer["ttl"] <= topology.dns.ttl, (name, answer["ttl"])


# With the resolver starting each answer at a random record, a given VIP leads none of
# QUERIES answers with probability (1 - 1/10)^QUERIES: 7e-10 for ten VIPs at 200 queries.
QUERIES = 200


def test_repeated_queries_put_every_vip_first(client, topology):
    """Round robin spreads new sessions only if every VIP leads some answers (a client takes
    the first address): two distinct first answers are not enough."""
    name = f"mail.{topology.dns.zone}"
    res = client.dns(name, count=QUERIES)
    assert res["ok"], res
    firsts = [a["addresses"][0] for a in res["answers"]]
    assert len(firsts) == QUERIES
    led = Counter(firsts)
    never = sorted(str(v.address) for v in topology.vips if str(v.address) not in led)
    assert not never, (f"{QUERIES} answers for {name}: {', '.join(never)} never came first; "
                       f"first addresses seen: {dict(sorted(led.items()))}")


def test_authoritative_server_gives_the_zone_ttl(client, topology, names):
    server = topology.nodes[topology.dns.server].address
    answers = client.each([dns_request(name, server=server, port=topology.dns.authoritative_port)
                           for name in names])
    for name, res in zip(names, answers, strict=True):
        assert res["ok"], res
        assert res["answers"][0]["ttl"] == topology.dns.ttl, name
