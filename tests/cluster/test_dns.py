"""DNS from the client's point of view: round robin over all VIPs, TTL from the zone."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def names(topology) -> list[str]:
    return list(topology.dns.fqdns)


def test_every_name_resolves_to_all_vips_through_the_clients_resolver(client, topology, names):
    want = sorted(str(v.address) for v in topology.vips)
    for name in names:
        res = client.dns(name)  # no server: client01's own resolv.conf, i.e. its Unbound
        assert res["ok"], res
        answer = res["answers"][0]
        label = name.split(".")[0]
        expected = sorted(str(a) for a in topology.dns.records[label])
        assert sorted(answer["addresses"]) == expected == want, name
        assert 0 < answer["ttl"] <= topology.dns.ttl, (name, answer["ttl"])


def test_repeated_queries_rotate_the_order(client, topology):
    name = f"mail.{topology.dns.zone}"
    res = client.dns(name, count=30)
    assert res["ok"], res
    firsts = [a["addresses"][0] for a in res["answers"]]
    assert len(firsts) == 30
    assert len(set(firsts)) > 1, f"30 answers for {name} all started with {firsts[0]}: no rotation"


def test_authoritative_server_gives_the_zone_ttl(client, topology, names):
    server = topology.nodes[topology.dns.server].address
    for name in names:
        res = client.dns(name, server=str(server), port=topology.dns.authoritative_port)
        assert res["ok"], res
        assert res["answers"][0]["ttl"] == topology.dns.ttl, name
