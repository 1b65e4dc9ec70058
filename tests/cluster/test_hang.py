"""A hung server: processes stopped (SIGSTOP), ports still open, nothing answers.

The gray failure a crash test never shows: a hung Postfix still holds its
listening socket, so the kernel completes every TCP handshake and only the
missing greeting tells. HAProxy's protocol checks must see it. A whole hung
node differs per OS (``mailring.faults``: hang's per-OS rule): with ucarp, a
daemon, CARP hangs too and a backup takes the VIPs while the hung node's
kernel keeps the addresses; with FreeBSD's kernel CARP the VIPs stay and
only the HAProxy checks on the other nodes route around it.
"""

from __future__ import annotations

import time

import pytest

from mailring import faults
from mailring.checks.serving import check_deadline_s
from mailring.polling.convergence import converge
from mailring.polling.haproxy import wait_server
from mailring.polling.serving import served_by_each, wait_served
from mailring.render.context import haproxy_backend

pytestmark = [pytest.mark.destructive, pytest.mark.faults("hang"), pytest.mark.long]

MARGIN_S = 1.5  # the signals, the runtime API round trip, the poll
RECOVER_S = 15.0
# After resume the node is CARP master again without becoming it (no gratuitous ARP), so a
# client whose cache still names the backup waits for its neighbour entry to go stale and
# be probed again: Linux's reachable time (15-45 s) plus delay and probes.
RESUME_S = 90.0


def wait_back(client, topology, node: str, vips: list[str]) -> float:
    """Wait until fresh SMTP sessions on ``vips`` reach ``node`` again; return how long it took."""
    t0 = time.monotonic()
    for vip in vips:
        wait_served(client, topology, vip, "smtp", lambda n: n == node, RESUME_S,
                    f"SMTP on {vip} back on {node} after it resumed")
    return time.monotonic() - t0


def hung_check_bound_s(topology) -> float:
    """How long every HAProxy may take to mark a hung daemon DOWN: the check in flight or due
    (one interval), then ``fall`` checks that each wait out the check timeout
    (``HaproxyTuning.down_within_s``)."""
    return topology.haproxy.all_down_within_s(hung=True) + MARGIN_S


def test_a_hung_postfix_on_a_vip_owner_is_marked_down_by_every_haproxy_and_backups_serve(
        cluster, client, nemesis, topology):
    node = topology.mail_nodes[3]
    smtp = topology.services["smtp"]
    backend, addr = haproxy_backend(smtp.name), str(node.address)
    vips = [str(v.address) for v in topology.vips_owned_by(node.name)]
    for other in topology.mail_nodes:
        wait_server(cluster, other.name, backend, node.name, up=True, deadline_s=RECOVER_S)
    before = client.banner(addr, smtp.port, smtp.protocol, timeout=2)
    assert before["ok"] and node.name in before["banner"], f"{addr}:{smtp.port} before the hang: {before}"

    t_hang = time.monotonic()
    fault = nemesis.inflict("hang", node.name, "postfix")
    took = {}
    for other in topology.mail_nodes:
        left = hung_check_bound_s(topology) - (time.monotonic() - t_hang)
        wait_server(cluster, other.name, backend, node.name, up=False, deadline_s=max(left, 0.1))
        took[other.name] = round(time.monotonic() - t_hang, 2)
    print(f"hung postfix on {node.name} marked DOWN after {took} s "
          f"(bound {hung_check_bound_s(topology):.1f} s)")
    # the gray failure: the connection is accepted (a local port was bound), no greeting comes
    hung = client.banner(addr, smtp.port, smtp.protocol, timeout=2)
    assert not hung["ok"] and "local_port" in hung and "timed out" in hung.get("error", ""), (
        f"{addr}:{smtp.port} with Postfix hung: expected an accepted connection and no greeting: {hung}")
    for vip in vips:
        assert converge(cluster, failed=set()).owner(vip) == node.name, f"{vip} left {node.name}"
        served = served_by_each(client, topology, [(vip, smtp.name)] * 4)  # independent: all at once
        assert node.name not in served, f"SMTP on {vip} reached the hung {node.name}: {served}"

    nemesis.heal(fault)
    for other in topology.mail_nodes:
        wait_server(cluster, other.name, backend, node.name, up=True, deadline_s=RECOVER_S)
    for vip in vips:
        wait_served(client, topology, vip, smtp.name, lambda n: n == node.name, check_deadline_s(topology),
                    f"SMTP on {vip} back on {node.name} once Postfix resumed")


def test_a_hung_node_is_routed_around_as_its_os_does(cluster, client, nemesis, topology):
    """The registry's per-OS rule, checked on the running cluster: where CARP hangs with the
    node (ucarp) a backup takes its VIPs and serves them; where it does not (kernel CARP) the
    VIPs stay on the hung node and only the other HAProxies route around its daemons."""
    node = topology.mail_nodes[1].name
    mine = [str(v.address) for v in topology.vips_owned_by(node)]
    leaves_carp = faults.kind("hang").out_of(cluster.FLAVOUR) == faults.CARP
    converge(cluster, failed=set())
    fault = nemesis.inflict("hang", node)
    assert cluster.carp_failed() == ({node} if leaves_carp else set())
    status = converge(cluster)  # the model asked with the failed set the rule gives
    smtp = topology.services["smtp"]
    if leaves_carp:
        for vip in mine:
            heir = status.owner(vip)
            assert heir not in (None, node), f"{vip}: {status.holders[vip]}"
            wait_served(client, topology, vip, smtp.name, lambda n, heir=heir: n == heir,
                        check_deadline_s(topology), f"SMTP on {vip} served by {heir}")
    else:
        for vip in mine:
            assert status.owner(vip) == node, f"{vip} left the hung {node}: {status.holders[vip]}"
    for other in topology.mail_nodes:  # every other HAProxy takes the hung node's servers out
        if other.name != node:
            wait_server(cluster, other.name, haproxy_backend(smtp.name), node, up=False,
                        deadline_s=hung_check_bound_s(topology))
    nemesis.heal(fault)
    converge(cluster, failed=set())
    back_s = wait_back(client, topology, node, mine)
    print(f"after {node} resumed, its VIPs were served by it again in {back_s:.1f} s")
