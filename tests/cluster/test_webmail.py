"""Webmail stickiness: with the local backend down, one client keeps one backup server across sessions.

HTTP and HTTPS use ``balance source``: HAProxy hashes the client's address
over the servers in use, so when the VIP owner's own webmail is down every
new connection from one address lands on the same backup server (a webmail
session is not torn between servers), while round robin would rotate over
all of them. client01 probes from its own address and from each alias the
topology gives it (a second client source address, added at boot).
"""

from __future__ import annotations

import pytest

from mailring.checks.client_address import haproxy_session, server_states
from mailring.client import http_request
from mailring.polling.convergence import converge
from mailring.polling.haproxy import wait_server
from mailring.polling.logs import LogCursor
from mailring.polling.wait import eventually
from mailring.render.context import haproxy_backend, source_hash_backup

REQUESTS = 8
RECOVER_S = 15.0
LOG_DEADLINE_S = 10.0


def sources(topology) -> list[str]:
    return [str(topology.client.address), *(str(a) for a in topology.client.aliases)]


def served_by(res: dict) -> str:
    """The node a webmail page names ("webmail <node>")."""
    assert res["ok"] and res["status"] == 200, res
    words = res["body"].split()
    assert len(words) == 2 and words[0] == "webmail", res["body"]
    return words[1]


@pytest.fixture
def owner_webmail_down(cluster, nemesis, topology):
    """The first VIP's owner with its webmail stopped and out of its own HAProxy; healed after."""
    vip = topology.vips[0]
    owner = vip.owner
    converge(cluster, failed=set())
    fall_s = topology.haproxy.down_within_s()
    fault = nemesis.stop(owner, "webmail")
    try:
        for svc in (s for s in topology.services.values() if s.protocol == "http"):
            wait_server(cluster, owner, haproxy_backend(svc.name), owner, up=False, deadline_s=fall_s + 5)
        yield vip
    finally:
        nemesis.heal(fault)
    for svc in (s for s in topology.services.values() if s.protocol == "http"):
        wait_server(cluster, owner, haproxy_backend(svc.name), owner, up=True, deadline_s=RECOVER_S)


@pytest.mark.destructive
@pytest.mark.parametrize("service", ["http", "https"])
def test_each_client_address_sticks_to_one_backup(cluster, client, topology, owner_webmail_down, service):
    if not topology.client.aliases:
        pytest.skip(f"{topology.client.name} has no aliases in {topology.path}: one source address only")
    vip, svc = owner_webmail_down, topology.services[service]
    owner, backend = vip.owner, haproxy_backend(service)
    states = server_states(cluster.haproxy_command(owner, "show stat"))
    running = [s for (b, s), st in states.items() if b == backend and st.up]
    assert owner not in running and len(running) >= 2, (
        f"{backend} on {owner} has {running} UP: round robin could not spread, stickiness proves nothing")
    cursor = LogCursor(cluster, [(owner, "haproxy")])
    chosen: dict[str, str] = {}
    for source in sources(topology):
        # independent requests, opened at once: balance source picks by address, not by order
        results = client.each([http_request(vip.address, svc.port, tls=svc.tls, source=source)] * REQUESTS)
        nodes = [served_by(r) for r in results]
        assert owner not in nodes, f"{owner}'s webmail is stopped, yet it answered {source}: {nodes}"
        assert len(set(nodes)) == 1, f"{service} from {source} through {vip.address} moved between {nodes}"
        assert len({r["local_port"] for r in results}) == REQUESTS, "the requests shared a connection"
        chosen[source] = nodes[0]
        last = results[-1]
        hop = eventually(lambda s=source, p=last["local_port"]: haproxy_session(
            cursor.records(owner, "haproxy"), s, p, backend=backend), LOG_DEADLINE_S,
            f"HAProxy on {owner} logging {source}:{last['local_port']}")
        assert hop.server == nodes[0], f"HAProxy sent {source} to {hop.server}, the page names {nodes[0]}"
    intended = {s: source_hash_backup(topology, owner, s) for s in sources(topology)}
    assert len(set(intended.values())) == len(intended), (
        f"{topology.path}: the client's addresses {intended} hash to one backup of {owner}; "
        f"give {topology.client.name} an alias that hashes to another one")
    assert chosen == intended, (f"{service} through {vip.address} with {owner}'s webmail down: "
                                f"sources landed on {chosen}, balance source intends {intended}")


@pytest.mark.destructive
def test_a_client_keeps_its_backup_across_http_and_https(cluster, client, topology, owner_webmail_down):
    """Both backends hash the same servers the same way: switching to HTTPS keeps the server."""
    vip = owner_webmail_down
    web = [s for s in topology.services.values() if s.protocol == "http"]
    for source in sources(topology):
        nodes = {s.name: served_by(client.http(vip.address, s.port, tls=s.tls, source=source)) for s in web}
        assert len(set(nodes.values())) == 1, f"{source} through {vip.address}: {nodes}"
