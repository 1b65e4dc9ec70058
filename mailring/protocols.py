"""Protocols as data: the one place that says how each mail protocol is served and checked.

Per protocol: the daemon that serves it, the topology service names it goes
by, HAProxy's health check for it, the greeting a client must see first and
the polite goodbye, whether the greeting names the serving node, its name in
dovecot.conf's ``protocols``, and the packages per OS. From this table come
the topology schema's lists, haproxy.cfg.j2's checks, dovecot.conf's
``protocols``, the probe's greeting table (passed in each request:
``probe_table``, as probe.py runs standalone on nodes), the sweep's named
greetings, the lab's preflight and the FreeBSD package lists. Adding a
protocol (ManageSieve on 4190, say) is a row here plus its service in the
topology file. ``SYSTEM`` lists what every mail node runs beside the daemons
(the packet filter that keeps clients off the PROXY listeners), with its
packages per OS the same way.

Stdlib only: ``python3 mailring/protocols.py packages debian`` prints the
Debian packages for scripts that run before the venv exists.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Daemon:
    name: str  # postfix | dovecot | webmail
    tool: str  # the binary the lab's preflight looks for
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # flavour -> packages


@dataclass(frozen=True)
class Protocol:
    name: str  # smtp | imap | pop3 | http
    daemon: str
    services: tuple[str, ...]  # the topology service names that speak it (plain and TLS)
    # HAProxy backend lines for the check; {fqdn} and {agent} are filled in per node
    haproxy_check: tuple[str, ...]
    greeting: str  # regex the first line from the server must match (the probe's banner check)
    quit: str = ""  # what a client sends to leave politely after the greeting
    names_node: bool = False  # the greeting names the serving node
    dovecot_protocol: str | None = None  # its name in dovecot.conf's protocols
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # flavour -> more packages


DAEMONS: dict[str, Daemon] = {d.name: d for d in (
    Daemon("postfix", "postfix", {"debian": ("postfix",), "freebsd": ("postfix",)}),
    Daemon("dovecot", "dovecot", {"freebsd": ("dovecot",)}),  # 2.4: dovecot24 (see packages())
    Daemon("webmail", "nginx", {"debian": ("nginx-light",), "freebsd": ("nginx",)}),
)}

# Beside the daemons, on every mail node: the packet filter that lets only the cluster's
# mail nodes reach the PROXY listeners (nftables on Linux; pf is in FreeBSD's base system).
SYSTEM: dict[str, Daemon] = {d.name: d for d in (
    Daemon("filter", "nft", {"debian": ("nftables",)}),
)}

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("smtp", "postfix", ("smtp", "submission"),
             ("option smtpchk EHLO {fqdn}",),
             greeting=r"220(?:[ -]|$)", quit="QUIT\r\n", names_node=True),
    Protocol("imap", "dovecot", ("imap", "imaps"),
             ("option tcp-check", "tcp-check expect string *\\ OK",
              "tcp-check send c\\ LOGOUT\\r\\n", "tcp-check expect string c\\ OK"),
             greeting=r"\* OK", quit="z LOGOUT\r\n", names_node=True, dovecot_protocol="imap",
             packages={"debian": ("dovecot-imapd",)}),
    Protocol("pop3", "dovecot", ("pop3", "pop3s"),
             ("# banner, then QUIT: the login process logs a clean logout, not a reset",
              "option tcp-check", "tcp-check expect string +OK", "tcp-check send QUIT\\r\\n",
              "tcp-check expect string +OK"),
             greeting=r"\+OK", quit="QUIT\r\n", names_node=True, dovecot_protocol="pop3",
             packages={"debian": ("dovecot-pop3d",)}),
    Protocol("http", "webmail", ("http", "https"),
             ("# the webmail backend leaves requests with this agent from cluster nodes out of its log",
              "option httpchk",
              "http-check send meth GET uri / ver HTTP/1.1 hdr Host {fqdn} hdr User-Agent {agent}",
              "http-check expect status 200"),
             greeting=r"HTTP/1\.[01] 200\b"),
)}


def service_names() -> tuple[str, ...]:
    return tuple(s for p in PROTOCOLS.values() for s in p.services)


def haproxy_checks(fqdn: str, agent: str) -> dict[str, list[str]]:
    """protocol -> the backend lines of its health check, for one node."""
    return {p.name: [line.format(fqdn=fqdn, agent=agent) for line in p.haproxy_check]
            for p in PROTOCOLS.values()}


def probe_table() -> dict[str, dict[str, str]]:
    """protocol -> {greeting, quit}: what probe.py checks, sent along in each request."""
    return {p.name: {"greeting": p.greeting, "quit": p.quit} for p in PROTOCOLS.values()}


def named_greetings() -> tuple[str, ...]:
    """Protocols whose greeting names the serving node (the sweep tells who served)."""
    return tuple(p.name for p in PROTOCOLS.values() if p.names_node)


def dovecot_protocols(protocols_in_use: set[str]) -> list[str]:
    """dovecot.conf's ``protocols`` for the protocols a topology serves."""
    return [p.dovecot_protocol for p in PROTOCOLS.values()
            if p.dovecot_protocol and p.name in protocols_in_use]


def packages(flavour: str, protocols_in_use: set[str] | None = None,
             dovecot_version: str = "2.3") -> list[str]:
    """The OS packages that serve the protocols (all of them by default), daemons first."""
    used = [p for p in PROTOCOLS.values() if protocols_in_use is None or p.name in protocols_in_use]
    out: list[str] = []
    for name in dict.fromkeys(p.daemon for p in used):
        out += [p for p in daemon_packages(name, flavour, dovecot_version, []) if p not in out]
    for p in used:
        out += [pkg for pkg in p.packages.get(flavour, ()) if pkg not in out]
    for d in SYSTEM.values():
        out += [pkg for pkg in d.packages.get(flavour, ()) if pkg not in out]
    return out


def daemon_packages(daemon: str, flavour: str, dovecot_version: str = "2.3",
                    protocols_in_use: list[str] | None = None) -> list[str]:
    """The packages of one daemon, with those of its protocols (all of them by default)."""
    pkgs = list(DAEMONS[daemon].packages.get(flavour, ()))
    if flavour == "freebsd" and daemon == "dovecot" and dovecot_version == "2.4":
        pkgs = ["dovecot24"]  # pkg: dovecot is the 2.3 series, dovecot24 the 2.4 one
    for p in PROTOCOLS.values():
        if p.daemon == daemon and (protocols_in_use is None or p.name in protocols_in_use):
            pkgs += [pkg for pkg in p.packages.get(flavour, ()) if pkg not in pkgs]
    return pkgs


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "packages":
        print(" ".join(packages(sys.argv[2])))
    else:
        sys.exit("usage: protocols.py packages debian|freebsd")
