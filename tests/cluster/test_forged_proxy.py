"""A client cannot choose the address the daemons log: forged PROXY headers are refused.

From client01, a PROXY header naming a documentation address (FORGED) goes to
every VIP on every service port (HAProxy's public binds, which must not read a
PROXY header from a client) and to every mail node's own PROXY listener of
every daemon (which the packet filter keeps for the cluster's mail nodes).
The header follows the server's greeting when one comes within GREETING_WAIT_S
(as a forger would find it: a server that ignores PROXY headers greets at once,
and Postfix would quote header bytes sent before its greeting in an "improper
command pipelining" line), else it goes at once; a listener that takes PROXY
headers (and HAProxy, were a public bind to accept them) waits for it silently.
The probe says how far each attempt got, so a test that reached nothing fails:
a VIP must take the connection and the header, and a node's PROXY port must
refuse it while the other nodes' HAProxy reaches it (their checks say UP), so
the refusal is the filter's, not a closed port. Once HAProxy and the serving
daemon have logged each plain VIP attempt (with client01's real address), no
daemon's log on any mail node may name the forged address.
"""

from __future__ import annotations

import pytest

from mailring import protocols
from mailring.checks import NotYet
from mailring.checks.client_address import SessionNotFound, haproxy_session, server_states
from mailring.logparse import HaproxyRecord
from mailring.polling.logs import LogCursor
from mailring.polling.wait import eventually
from mailring.render.context import haproxy_backend

FORGED = "203.0.113.77"  # TEST-NET-3 (RFC 5737): a documentation address, never a real client
LOGS = ("haproxy", "postfix", "dovecot", "webmail")  # every daemon's log on a mail node
LOG_DEADLINE_S = 30.0  # a bound: HAProxy logs a session when both sides have closed
GREETING_WAIT_S = 1.0
UP_DEADLINE_S = 30.0  # health checks every few seconds; rise and fall are in the topology


def then(topology, service: str, host: str) -> str:
    """What follows the header: the protocol's goodbye, or a request for HTTP."""
    svc = topology.services[service]
    if svc.protocol == "http":
        return f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n"
    return protocols.PROTOCOLS[svc.protocol].quit


def wait(svc) -> float:
    """HTTP has no greeting: its header and request go at once."""
    return 0.0 if svc.protocol == "http" else GREETING_WAIT_S


def vip_targets(topology) -> list[dict]:
    return [{"name": f"{name} on VIP {vip.address}:{svc.port}", "host": str(vip.address),
             "port": svc.port, "then": then(topology, name, str(vip.address)), "service": name,
             "vip": str(vip.address), "greeting_wait": wait(svc)}
            for vip in topology.vips for name, svc in topology.services.items()]


def proxy_targets(topology) -> list[dict]:
    return [{"name": f"{name} PROXY port {node.name}:{svc.proxy_port}", "host": str(node.address),
             "port": svc.proxy_port, "then": then(topology, name, str(node.address)), "service": name,
             "node": node.name, "greeting_wait": wait(svc)}
            for node in topology.mail_nodes for name, svc in topology.services.items()
            if svc.daemon and svc.proxy_port]


def peers_reach_the_proxy_ports(cluster, topology) -> None:
    """Every node's PROXY listeners answer the other mail nodes' HAProxy (check UP).

    Waited for: run first, right after ``up``, the servers are still "UP 1/2"
    (HAProxy starts them one failed check from DOWN) until their first checks pass."""
    mail = [n.name for n in topology.mail_nodes]
    proxied = [name for name, svc in topology.services.items() if svc.daemon and svc.proxy_port]

    def all_up() -> None:
        down = []
        for i, node in enumerate(mail):
            peer = mail[(i + 1) % len(mail)]
            states = server_states(cluster.haproxy_command(peer, "show stat"))
            for name in proxied:
                state = states.get((haproxy_backend(name), node))
                if state is None or not state.up:
                    down.append(f"{peer}'s HAProxy sees {haproxy_backend(name)}/{node} as "
                                f"{state.status if state else 'missing'}")
        if down:
            raise NotYet("; ".join(down))

    eventually(all_up, UP_DEADLINE_S, "the PROXY listeners answering the other mail nodes' HAProxy",
               poll_s=0.2)


def wait_logged(cluster, topology, cursor: LogCursor, target: dict, result: dict) -> None:
    """HAProxy on the VIP's holder logged the attempt, and so did the daemon it went to,
    both with client01's real address (the attempt really reached them)."""
    me, port = str(topology.client.address), result["local_port"]
    holder = topology.expected_owner(target["vip"])

    def session() -> HaproxyRecord:
        """The holder's line, or another node's should the VIP have been elsewhere: the
        claim here is that the attempt reached an HAProxy, whichever took it."""
        looked = []
        for node in [holder] + [n.name for n in topology.mail_nodes if n.name != holder]:
            try:
                return haproxy_session(cursor.records(node, "haproxy"), me, port)
            except SessionNotFound as exc:
                looked.append(f"{node}: {exc}")
        raise SessionNotFound("; ".join(looked))

    hop = eventually(session, LOG_DEADLINE_S,
                     f"an HAProxy (the VIP's holder is {holder}) logging {target['name']} from port "
                     f"{port} (the probe saw {result})")
    svc = topology.services[target["service"]]
    daemon = svc.daemon or topology.services[svc.backend].daemon
    if svc.tls or daemon not in ("postfix", "dovecot") or hop.server not in topology.nodes:
        return  # the header ended the TLS handshake or the HTTP request in HAProxy itself
    mark = f"{me}]:{port}" if daemon == "postfix" else f"rport={port}"

    def logged() -> None:
        if mark not in cluster.log_text(hop.server, daemon)[cursor.marks[(hop.server, daemon)]:]:
            raise NotYet(f"no {daemon} line with {mark!r} on {hop.server} yet")

    eventually(logged, LOG_DEADLINE_S, f"{daemon} on {hop.server} logging {target['name']} "
               f"(the probe saw {result})")


def test_a_forged_proxy_header_is_refused_and_never_logged(cluster, client, topology):
    if not topology.proxy_protocol:
        pytest.skip(f"{topology.path} has proxy_protocol off: no daemon reads PROXY headers")
    peers_reach_the_proxy_ports(cluster, topology)
    cursor = LogCursor(cluster, [(n.name, log) for n in topology.mail_nodes for log in LOGS])
    vips, ports = vip_targets(topology), proxy_targets(topology)
    results = client.forge(FORGED, vips + ports)["results"]

    problems = []
    for t in ports:
        r = results[t["name"]]
        if r.get("connected"):
            problems.append(f"{t['node']} {t['service']}: its PROXY port {t['port']} took client01's "
                            f"connection and a header forging {FORGED}; it answered {r['reply'][:60]!r}")
        elif not r.get("refused"):
            problems.append(f"{t['node']} {t['service']}: port {t['port']} neither refused nor took "
                            f"the attempt: {r}")
    unreached = [f"{t['name']}: the forged header never reached HAProxy: {r}"
                 for t in vips for r in [results[t["name"]]] if not (r.get("connected") and r.get("sent"))]
    assert not unreached, "\n".join(unreached)
    for t in vips:
        if not topology.services[t["service"]].tls:
            wait_logged(cluster, topology, cursor, t, results[t["name"]])
    # every attempt has ended and been logged where it was taken: now read every log
    problems += [f"{node.name} {log} logged the forged client address {FORGED}: {line.strip()}"
                 for node in topology.mail_nodes for log in LOGS
                 for line in cluster.log_text(node.name, log)[cursor.marks[(node.name, log)]:].splitlines()
                 if FORGED in line]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
