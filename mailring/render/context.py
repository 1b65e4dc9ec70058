"""What a node's templates see: the topology seen from one node, as plain data.

Everything a config needs (addresses, ports, vhids, peers, users, the DNS
zone) comes from the topology here; templates hold syntax only.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from mailring import protocols
from mailring.topology import Node, Service, Topology, Vip

MAIL_UID = 5000  # owner of the shared mail store (Postfix virtual + Dovecot userdb)
# The User-Agent of HAProxy's HTTP health checks; the webmail backend does not log them.
HAPROXY_CHECK_AGENT = "mailring-haproxy-check"
# HAProxy's tcplog / httplog formats plus %bi:%bp (the source address and port of
# HAProxy's connection to the server), which mailring.logparse reads as backend_source.
HAPROXY_LOG_FORMAT = {
    "tcp": "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq %bi:%bp",
    "http": "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc "
            "%sq/%bq %bi:%bp %hr %hs %{+Q}r",
}


@dataclass(frozen=True)
class Backend:
    """One HAProxy backend: a frontend service sent to a daemon listener on every node."""

    service: Service  # the service the client connects to (may be TLS)
    target: Service  # the plain service whose daemon serves it
    port: int  # the daemon port HAProxy connects to
    proxy: str  # "" | "send-proxy-v2" | "send-proxy-v2-ssl"

    @property
    def name(self) -> str:
        return self.service.name


def haproxy_backend(service: str) -> str:
    """The HAProxy backend that serves a topology service (templates and the runtime API agree)."""
    return f"be_{service}"


def source_hash_backup(topo: Topology, node: str, source: str) -> str:
    """The backup HAProxy on ``node`` sends a client address to with ``balance source`` while
    its own server is down and every other server is up.

    HAProxy's default map-based hash (no avalanche) takes the IPv4 address as one
    32-bit number, and with equal weights its server map repeats the usable servers in
    declaration order (src/backend.c get_server_sh, src/lb_map.c recalc_server_map), so
    it picks ``backups[address % len(backups)]``; the backups are declared in the
    order of ``peers`` in the rendered config.
    """
    backups = [n.name for n in topo.mail_nodes if n.name != node]
    return backups[int(IPv4Address(source)) % len(backups)]


def password_hash(password: str, salt: bytes | None = None) -> str:
    """Dovecot {SSHA256} hash: base64(sha256(password + salt) + salt)."""
    salt = salt if salt is not None else os.urandom(8)
    digest = hashlib.sha256(password.encode() + salt).digest()
    return "{SSHA256}" + base64.b64encode(digest + salt).decode()


def backends(topo: Topology) -> list[Backend]:
    out = []
    for svc in topo.services.values():
        target = topo.services[svc.backend] if svc.tls and svc.backend else svc
        if topo.proxy_protocol and target.proxy_port:
            port = target.proxy_port
            proxy = "send-proxy-v2-ssl" if svc.tls else "send-proxy-v2"
        else:
            port, proxy = target.port, ""
        out.append(Backend(svc, target, port, proxy))
    return out


def mynetworks(topo: Topology) -> list[str]:
    """Postfix's ``mynetworks``, the clients it relays for to any domain: loopback, the
    mail nodes themselves and the topology's customer networks, nothing wider. With PROXY
    off every client seems to come from a mail node, so every client relays (the article's
    dilemma); with PROXY on Postfix sees the client, so only customers do."""
    return ["127.0.0.0/8", *(f"{n.address}/32" for n in topo.mail_nodes),
            *(str(net) for net in topo.customer_networks)]


def proxy_ports(topo: Topology) -> list[int]:
    """The daemons' PROXY listener ports, which only the cluster's mail nodes may reach
    (the packet filter); none when the topology has the PROXY protocol off."""
    if not topo.proxy_protocol:
        return []
    return sorted({s.proxy_port for s in topo.services.values() if s.daemon and s.proxy_port})


def carp_password_file(topo: Topology) -> str:
    return topo.carp_password


def node_context(topo: Topology, node: Node, paths: dict[str, str], flavour: str) -> dict[str, Any]:
    """The template context for ``node`` under ``flavour`` with its filesystem ``paths``."""
    mail = topo.mail_nodes
    def rank(v: Vip) -> int:
        return -1 if node.name == v.owner else [n for n, _ in v.backups].index(node.name)

    runs: list[tuple[Vip, int, int]] = [(v, v.skew_of(node.name) or 0, rank(v))
                                        for v in topo.vips_run_by(node.name)]
    daemons = {s.daemon for s in topo.services.values() if s.daemon}
    in_use = {s.protocol for s in topo.services.values()}
    return {
        "topo": topo,
        "flavour": flavour,
        "node": node,
        "fqdn": f"{node.name}.{topo.domain}",
        "paths": paths,
        "mail_nodes": mail,
        "peers": [n for n in mail if n.name != node.name],
        "client": topo.client,
        "vips": topo.vips,
        "carp_runs": runs,  # (vip, this node's advskew, its backup rank or -1) per vhid it runs
        "services": topo.services,
        "daemon_services": {d: [s for s in topo.services.values() if s.daemon == d] for d in daemons},
        "backends": backends(topo),
        "dns": topo.dns,
        "users": [(u, password_hash(u.password)) for u in topo.users],
        "mail_uid": MAIL_UID,
        "cluster_addresses": [n.address for n in mail],
        "mynetworks": mynetworks(topo),
        "proxy_ports": proxy_ports(topo),
        # who may reach them: the mail nodes, by their own addresses or a VIP they hold
        "proxy_sources": [*(n.address for n in mail), *(v.address for v in topo.vips)],
        "haproxy": topo.haproxy,
        "haproxy_check_agent": HAPROXY_CHECK_AGENT,
        "haproxy_checks": protocols.haproxy_checks(f"{node.name}.{topo.domain}", HAPROXY_CHECK_AGENT),
        "dovecot_protocols": protocols.dovecot_protocols(in_use),
        "packages": protocols.packages(flavour, in_use, topo.dovecot_version),
        "haproxy_log_format": HAPROXY_LOG_FORMAT,
        "zone": topo.dns.zone,
    }
