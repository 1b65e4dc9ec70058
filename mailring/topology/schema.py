"""The topology file's shape, checked by pydantic (types, ranges, unknown keys).

Cross-field rules (addresses inside the network, owners that are nodes, one
vhid per VIP, ...) live in ``mailring.topology.load``; this module only says
what each field may hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from mailring import protocols

NodeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{0,11}$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Skew = Annotated[int, Field(ge=0, le=240)]
DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]



def _registered(names: Callable[[], Iterable[str]]) -> AfterValidator:
    """A name the protocol registry (mailring.protocols) knows, read when a file is checked."""

    def check(value: str) -> str:
        allowed = tuple(names())
        if value not in allowed:
            raise ValueError(f"Input should be one of {', '.join(allowed)}")
        return value

    return AfterValidator(check)


# Service names, protocols and daemons come from the protocol registry.
ServiceName = Annotated[str, _registered(protocols.service_names)]
Protocol = Annotated[str, _registered(lambda: protocols.PROTOCOLS)]
Daemon = Annotated[str, _registered(lambda: protocols.DAEMONS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSpec(Strict):
    role: Literal["mail", "client"]
    address: IPv4Address
    # More addresses of the same host on the cluster network, e.g. a second client
    # source address for tests that need two clients (HAProxy's balance source).
    aliases: list[IPv4Address] = Field(default_factory=list)


class VipSpec(Strict):
    address: IPv4Address
    vhid: Annotated[int, Field(ge=1, le=254)]
    owner: str
    backups: dict[str, Skew] = Field(default_factory=dict)


class ServiceSpec(Strict):
    port: Port
    protocol: Protocol
    daemon: Daemon | None = None
    proxy_port: Port | None = None
    tls: bool = False
    backend: ServiceName | None = None


class CarpSpec(Strict):
    advbase: Annotated[int, Field(ge=1, le=255)] = 1
    password: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    # The design needs preemption (a VIP returns to its owner when the owner is back). false
    # renders a cluster without it, which the ownership model does not describe: kept so that
    # mailring fuzz can be shown catching it (fixtures/topology-nopreempt.yaml).
    preempt: bool = True


class HaproxySpec(Strict):
    check_interval_ms: Annotated[int, Field(ge=100, le=60000)] = 1000
    # the backups' interval at rest (another node's server is needed only when the local one
    # is down); unset, check_interval_ms
    backup_interval_ms: Annotated[int, Field(ge=100, le=60000)] | None = None
    # how long one check may wait for the daemon's answer (HAProxy's timeout check)
    check_timeout_ms: Annotated[int, Field(ge=100, le=60000)] = 2000
    # HAProxy's fastinter (between the checks confirming a change) and downinter (while a
    # server is DOWN); unset, both are check_interval_ms
    fast_interval_ms: Annotated[int, Field(ge=100, le=60000)] | None = None
    down_interval_ms: Annotated[int, Field(ge=100, le=60000)] | None = None
    fall: Annotated[int, Field(ge=1, le=10)] = 2
    rise: Annotated[int, Field(ge=1, le=10)] = 2


class DnsSpec(Strict):
    zone: Annotated[str, StringConstraints(pattern=r"^([a-z0-9-]+\.)+[a-z]+$")]
    ttl: Annotated[int, Field(ge=1, le=86400)] = 900
    server: str
    port: Port = 53
    authoritative_port: Port
    # A label gets an A record for every VIP; {label: [VIP, ...]} limits it.
    names: list[DnsLabel | dict[DnsLabel, list[IPv4Address]]]


class UserSpec(Strict):
    address: Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]+@([a-z0-9-]+\.)+[a-z]+$")]
    password: Annotated[str, StringConstraints(pattern=r"^[^:\s]{6,64}$")]


class VagrantSpec(Strict):
    # the guests' operating system: picks the rendered flavour and the driver's guest adapter
    os: Literal["freebsd", "debian"] = "freebsd"
    memory: Annotated[int, Field(ge=256, le=65536)] = 512
    cpus: Annotated[int, Field(ge=1, le=64)] = 1
    boxes: dict[Literal["virtualbox", "libvirt"], str] = Field(
        default_factory=lambda: {"virtualbox": "bento/freebsd-14", "libvirt": "generic/freebsd14"}
    )


class TopologyFile(Strict):
    """The file after ``extends:`` is resolved (load merges the base file in first)."""

    name: DnsLabel
    network: IPv4Network
    proxy_protocol: bool = True
    carp: CarpSpec
    nodes: dict[NodeName, NodeSpec]
    vips: list[VipSpec]
    services: dict[ServiceName, ServiceSpec]
    haproxy: HaproxySpec = HaproxySpec()
    dns: DnsSpec
    users: list[UserSpec]
    vagrant: VagrantSpec = VagrantSpec()
    # The Dovecot major version the mail nodes run, so their dovecot.conf is
    # rendered for it (2.4 changed the syntax). Debian 12's lab has 2.3; FreeBSD's
    # pkg has both (dovecot = 2.3, dovecot24 = 2.4).
    dovecot_version: Literal["2.3", "2.4"] = "2.3"
    # The customers' networks: Postfix relays their mail to any domain (mynetworks).
    # Anyone else reaches only the cluster's own domain, or relays after AUTH.
    customer_networks: list[IPv4Network] = Field(default_factory=list)

    @field_validator("dovecot_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        """YAML reads an unquoted 2.4 as a number; take it as the text it looks like."""
        return str(value) if isinstance(value, float) else value
