"""The cluster as typed, immutable objects, and the CARP ownership model.

``Topology.expected_owner(vip, failed)`` says which live node must hold a VIP
for any set of failed nodes: the live candidate with the lowest advskew (the
owner advertises with 0), as CARP with preemption elects it. Tests compare
the running cluster with this prediction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "mail" or "client"
    address: IPv4Address
    aliases: tuple[IPv4Address, ...] = ()  # more addresses of the host on the cluster network


@dataclass(frozen=True)
class Vip:
    address: IPv4Address
    vhid: int
    owner: str
    backups: tuple[tuple[str, int], ...]  # (node, advskew), lowest skew first

    @property
    def candidates(self) -> tuple[tuple[str, int], ...]:
        """Every node that runs this vhid with its advskew, owner (0) first."""
        return ((self.owner, 0), *self.backups)

    def skew_of(self, node: str) -> int | None:
        return dict(self.candidates).get(node)


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    protocol: str  # smtp | pop3 | imap | http
    daemon: str | None  # postfix | dovecot | webmail; None for TLS front ends
    proxy_port: int | None
    tls: bool
    backend: str | None  # the plain service a TLS front end forwards to


@dataclass(frozen=True)
class User:
    address: str
    password: str

    @property
    def local(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.split("@", 1)[1]


@dataclass(frozen=True)
class Dns:
    zone: str
    ttl: int
    server: str
    port: int
    authoritative_port: int
    names: tuple[str, ...]
    records: dict[str, tuple[IPv4Address, ...]] = field(hash=False, default_factory=dict)

    @property
    def fqdns(self) -> tuple[str, ...]:
        return tuple(f"{n}.{self.zone}" for n in self.names)


@dataclass(frozen=True)
class HaproxyTuning:
    """HAProxy's health checks: ``inter`` while a server's state is settled (the backups' own
    ``inter`` for the other nodes' servers), ``fastinter`` between the checks that confirm a
    change (``fall`` failures, ``rise`` passes), ``downinter`` while it is DOWN. Unset, the
    backups' interval is the local one's, and the last two are ``inter`` (HAProxy's defaults)."""

    check_interval_ms: int
    fall: int
    rise: int
    check_timeout_ms: int = 2000
    fast_interval_ms: int | None = None
    down_interval_ms: int | None = None
    backup_interval_ms: int | None = None

    @property
    def backup_ms(self) -> int:
        return self.backup_interval_ms or self.check_interval_ms

    @property
    def fast_ms(self) -> int:
        return self.fast_interval_ms or self.check_interval_ms

    @property
    def down_ms(self) -> int:
        return self.down_interval_ms or self.check_interval_ms

    def down_within_s(self, hung: bool = False, backup: bool = False) -> float:
        """The longest a server that stopped answering stays UP: the next check comes within
        ``inter`` (the backups' on another node's HAProxy), then ``fall`` - 1 more ``fastinter``
        apart; each of them waits the check timeout first when the daemon is hung (a port open,
        nothing answering)."""
        wait = self.check_timeout_ms if hung else 0
        inter = self.backup_ms if backup else self.check_interval_ms
        return (inter + (self.fall - 1) * self.fast_ms + self.fall * wait) / 1000

    def all_down_within_s(self, hung: bool = False) -> float:
        """The longest until every HAProxy of the ring, its own and the others', marks a server
        that stopped answering DOWN."""
        return max(self.down_within_s(hung), self.down_within_s(hung, backup=True))

    def up_within_s(self) -> float:
        """The longest a DOWN server that answers again stays DOWN: the next check within
        ``downinter``, then ``rise`` - 1 more ``fastinter`` apart."""
        return (self.down_ms + (self.rise - 1) * self.fast_ms) / 1000


@dataclass(frozen=True)
class VagrantSettings:
    memory: int
    cpus: int
    boxes: dict[str, str] = field(hash=False)
    os: str = "freebsd"  # freebsd | debian: the guests' OS (mailring.drivers.vagrant.guests)


@dataclass(frozen=True)
class Topology:
    path: str
    name: str
    network: IPv4Network
    proxy_protocol: bool
    advbase: int
    carp_password: str
    nodes: dict[str, Node] = field(hash=False)
    vips: tuple[Vip, ...]
    services: dict[str, Service] = field(hash=False)
    haproxy: HaproxyTuning
    dns: Dns
    users: tuple[User, ...]
    vagrant: VagrantSettings
    dovecot_version: str = "2.3"  # "2.3" | "2.4": the syntax of the rendered dovecot.conf
    preempt: bool = True  # CARP preemption as rendered; the model assumes it (see schema.CarpSpec)
    # networks whose mail Postfix relays to any domain (the article's customers)
    customer_networks: tuple[IPv4Network, ...] = ()

    def fingerprint(self) -> str:
        """A digest of what the topology says, not of where its file is: two files that say the
        same match; any other name, address, port, vhid or setting gives another digest."""
        return hashlib.sha256(repr(dataclasses.replace(self, path="")).encode()).hexdigest()[:16]

    # -- lookups -----------------------------------------------------------
    @property
    def mail_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "mail"]

    @property
    def client(self) -> Node:
        """The client host probes run on (the first node with role client)."""
        return next(n for n in self.nodes.values() if n.role == "client")

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def vip(self, address: str | IPv4Address) -> Vip:
        want = IPv4Address(str(address))
        for v in self.vips:
            if v.address == want:
                return v
        raise KeyError(f"no VIP {address} in {self.path}")

    def vips_owned_by(self, node: str) -> list[Vip]:
        return [v for v in self.vips if v.owner == node]

    def vips_run_by(self, node: str) -> list[Vip]:
        """VIPs whose vhid this node takes part in (as owner or backup)."""
        return [v for v in self.vips if v.skew_of(node) is not None]

    @property
    def domain(self) -> str:
        return self.dns.zone

    def is_customer(self, address: str | IPv4Address) -> bool:
        """Whether mail from ``address`` is relayed to any domain (it is in a customer network)."""
        addr = IPv4Address(str(address))
        return any(addr in net for net in self.customer_networks)

    # -- ownership model ---------------------------------------------------
    def expected_owner(self, vip: Vip | str | IPv4Address, failed: Iterable[str] = ()) -> str | None:
        """The live node that must hold ``vip`` when ``failed`` nodes are down.

        CARP with preemption elects the live candidate with the lowest advskew;
        None when every candidate is down (the VIP is unreachable).
        """
        v = vip if isinstance(vip, Vip) else self.vip(vip)
        down = set(failed)
        live = [(skew, node) for node, skew in v.candidates if node not in down]
        return min(live)[1] if live else None

    def expected_owners(self, failed: Iterable[str] = ()) -> dict[str, str | None]:
        down = frozenset(failed)
        return {str(v.address): self.expected_owner(v, down) for v in self.vips}

    def takeover_rank(self, vip: Vip | str | IPv4Address, failed: Iterable[str] = ()) -> int:
        """Which backup takes ``vip`` over when ``failed`` are down: 0 = the first backup,
        -1 = the owner keeps it (or nobody can)."""
        v = vip if isinstance(vip, Vip) else self.vip(vip)
        owner = self.expected_owner(v, failed)
        names = [n for n, _ in v.backups]
        return names.index(owner) if owner in names else -1

    def load(self, failed: Iterable[str] = ()) -> dict[str, int]:
        """VIPs per live mail node under the model, for a set of failed nodes."""
        down = frozenset(failed)
        counts = {n.name: 0 for n in self.mail_nodes if n.name not in down}
        for owner in self.expected_owners(down).values():
            if owner is not None:
                counts[owner] = counts.get(owner, 0) + 1
        return counts

    def load_bound(self, live: int) -> int:
        """The most VIPs a live node may hold: ceil(VIPs / live nodes) + 1."""
        return math.ceil(len(self.vips) / max(live, 1)) + 1

    def failover_bound_s(self, vip: Vip | str | IPv4Address, failed: Iterable[str] = ()) -> float:
        """CARP's takeover bound for ``vip`` once ``failed`` are down: 3 x advbase + skew/256."""
        v = vip if isinstance(vip, Vip) else self.vip(vip)
        new = self.expected_owner(v, failed)
        skew = v.skew_of(new) if new is not None else 0
        return 3 * self.advbase + (skew or 0) / 256
