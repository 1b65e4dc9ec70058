"""A local daemon stops: HAProxy on the VIP owner marks it DOWN and sends sessions to every other
server in turn.

The sessions through the owner's VIPs are independent, so they are opened all at once: round
robin hands each new connection to the next server whichever way they interleave."""

from __future__ import annotations

import pytest

from mailring.checks.serving import check_deadline_s
from mailring.polling.haproxy import wait_server
from mailring.polling.serving import served_by, served_by_each, wait_served
from mailring.render.context import haproxy_backend

pytestmark = pytest.mark.destructive

ROUNDS = 3  # sessions per backup server: round robin reaches each one every round


@pytest.mark.parametrize(("daemon", "service"), [("postfix", "smtp"), ("dovecot", "imap"),
                                                  ("dovecot", "pop3")])
def test_local_service_down_is_served_by_backups_in_round_robin(
        cluster, client, nemesis, topology, mail_node, daemon, service):
    node = mail_node
    others = sorted(n.name for n in topology.mail_nodes if n.name != node)
    vips = [str(v.address) for v in topology.vips_owned_by(node)]
    for vip in vips:
        assert served_by(client, topology, vip, service) == node
    stop = nemesis.stop(node, daemon)
    # HAProxy on the owner takes its own server out after ``fall`` failed checks; a session
    # opened before that waits out its connect retries (a second apart) and is redispatched,
    # so the client's view is asked only once HAProxy has marked the server DOWN
    wait_server(cluster, node, haproxy_backend(service), node, up=False,
                deadline_s=check_deadline_s(topology))
    for vip in vips:
        wait_served(client, topology, vip, service, lambda n: n != node, check_deadline_s(topology),
                    f"{service} on {vip} served by a backup once {daemon} stopped on {node}")
    sessions = ROUNDS * len(others)  # independent sessions: opened all at once
    servers = served_by_each(client, topology, [(vips[i % len(vips)], service) for i in range(sessions)])
    assert node not in servers, f"{daemon} is stopped on {node} but it served: {servers}"
    assert sorted(set(servers)) == others, (
        f"{sessions} {service} sessions through {node}'s VIPs reached {sorted(set(servers))}, "
        f"expected exactly the other live nodes {others} in round robin: {servers}")
    nemesis.heal(stop)
    # every service of the daemon, not just this one: the next test may probe another
    served = [s.name for s in topology.services.values() if s.daemon == daemon]
    for vip in vips:
        for name in served:
            wait_served(client, topology, vip, name, lambda n: n == node, check_deadline_s(topology),
                        f"{name} on {vip} back on {node} once {daemon} started again")
