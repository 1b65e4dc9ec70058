"""Guest OS adapters: everything the vagrant driver does differently on FreeBSD and Debian guests.

The topology's ``vagrant.os`` picks one (``guest_for``); the driver calls only
this interface, so it has no OS branches: which flavour is rendered and how it
is applied, which addresses a node holds and whether its cluster NIC is up,
service control, hanging and resuming daemons, readiness, isolation and log paths.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailring.errors import InputError

if TYPE_CHECKING:
    from mailring.topology import Topology


@dataclass(frozen=True)
class Holdings:
    """A node's cluster NIC as its OS reports it: name, link up, VIPs it holds as master."""

    iface: str | None
    up: bool
    vips: tuple[str, ...]


class Guest(abc.ABC):
    """One guest operating system."""

    os: str  # the topology's vagrant.os value
    flavour: str  # mailring.render flavour of the bundles
    auto_config: bool  # whether Vagrant configures the cluster NIC (else the bundle does)
    insert_key: bool  # whether Vagrant replaces the box's insecure key on first boot

    def check_topology(self, topo: Topology) -> None:
        """Refuse (InputError) a topology this OS cannot run; most can run any."""
        return None

    @abc.abstractmethod
    def apply_command(self, bundle: str) -> str:
        """The shell command (as root) that applies an uploaded bundle on the node."""

    @abc.abstractmethod
    def holdings_argv(self) -> list[str]:
        """The command whose output ``holdings`` reads."""

    @abc.abstractmethod
    def holdings(self, text: str, address: str, vips: dict[int, str]) -> Holdings:
        """The NIC holding ``address`` and the VIPs (vhid -> address) held as master on it."""

    @abc.abstractmethod
    def service_argvs(self, service: str, start: bool) -> list[list[str]]:
        """Commands that stop or start one mailring service."""

    @abc.abstractmethod
    def freeze_argvs(self, role: str, daemon: str | None, stop: bool) -> list[list[str]]:
        """Commands that SIGSTOP (``stop``) or SIGCONT every process of one mailring daemon
        (None: of every daemon a node of ``role`` runs), never the kernel, init or sshd. A
        daemon that is not running is left alone, as the lab's init does."""

    @abc.abstractmethod
    def ready_argv(self, role: str) -> list[str]:
        """The command whose output ``not_ready`` reads."""

    @abc.abstractmethod
    def not_ready(self, role: str, text: str, rc: int) -> str:
        """What is not running yet on a node of ``role``, as one line; "" when all is."""

    @abc.abstractmethod
    def listening_argv(self) -> list[str]:
        """The command whose output ``listening`` reads: the node's listening TCP sockets."""

    @abc.abstractmethod
    def listening(self, text: str) -> set[str]:
        """"address:port" of every listening TCP socket ("*:port" for any address)."""

    @abc.abstractmethod
    def resync_clock_argv(self) -> list[str]:
        """A mail node's clock measured afresh against the client's and stepped to it, returning
        once it is in step (after a snapshot paused the VM, or restored an old clock)."""

    @abc.abstractmethod
    def link_argv(self, iface: str, up: bool) -> list[str]:
        """Bring the cluster NIC up or down (isolate/heal); SSH stays on the management NIC."""

    @abc.abstractmethod
    def log_paths(self, service: str, log_dir: str) -> list[str]:
        """Files that hold a service's log on the node."""

    def log_filter(self, service: str, text: str) -> str:
        """The service's lines of what ``log_paths`` read (the whole text by default)."""
        return text


def guest_for(os_name: str) -> Guest:
    """The adapter for a topology's ``vagrant.os``."""
    from mailring.drivers.vagrant.guests.debian import Debian
    from mailring.drivers.vagrant.guests.freebsd import FreeBSD

    for cls in (FreeBSD, Debian):
        if cls.os == os_name:
            return cls()
    raise InputError(f"vagrant.os: {os_name!r} has no guest adapter; use freebsd or debian")
