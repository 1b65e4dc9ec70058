"""The one interface every driver implements, and the driver registry.

Tests, the CLI, nemesis and probes talk to a ``Cluster`` only; the driver
behind it (``lab``: Linux namespaces on this host, ``vagrant``: FreeBSD VMs)
is chosen by name and imported on first use, so a driver's optional
dependencies never load unless it is picked.
"""

from __future__ import annotations

import abc
import importlib
import shlex
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailring.errors import InputError

if TYPE_CHECKING:
    from mailring.topology import Topology

DRIVERS = {
    "lab": "mailring.drivers.lab.cluster:LabCluster",
    "vagrant": "mailring.drivers.vagrant.cluster:VagrantCluster",
}
DEFAULT_DRIVER = "lab"
DEFAULT_LAB = "mailring"
SERVICES = ("postfix", "dovecot", "haproxy", "carp", "webmail", "dns")


class TransportError(RuntimeError):
    """The command could not be run on the node at all (not: it ran and failed)."""


@dataclass
class Result:
    """What a command run on a node left: exit code, stdout, stderr."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def __str__(self) -> str:
        tail = (self.stderr or self.stdout).strip().splitlines()[-5:]
        return f"`{shlex.join(self.argv)}` exited {self.rc}: " + " | ".join(tail)


@dataclass
class NodeStatus:
    name: str
    state: str  # up | down | crashed | isolated
    address: str


@dataclass
class Status:
    nodes: dict[str, NodeStatus]
    holders: dict[str, list[str]]  # VIP -> nodes that hold it as CARP master now
    faults: dict[str, str] = field(default_factory=dict)  # node -> crashed | isolated

    def owner(self, vip: str) -> str | None:
        """The single holder of a VIP; None when nobody or several hold it."""
        held = self.holders.get(vip, [])
        return held[0] if len(held) == 1 else None


class Running(abc.ABC):
    """A command started on a node that runs until stopped (a probe timeline)."""

    @abc.abstractmethod
    def peek(self) -> str:
        """Everything the command printed on stdout so far (it keeps running)."""

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> Result:
        """Close the command's stdin, wait for it to end and return its output."""


class Cluster(abc.ABC):
    """A running (or startable) mail cluster built from one topology."""

    NAME = "abstract"

    def __init__(self, topology: Topology, lab: str = DEFAULT_LAB) -> None:
        self.topology = topology
        self.lab = lab

    # lifecycle ------------------------------------------------------------
    @abc.abstractmethod
    def up(self) -> None:
        """Bring every node and daemon up; return when each answers."""

    @abc.abstractmethod
    def down(self) -> None:
        """Remove everything this lab created; safe to call twice."""

    @abc.abstractmethod
    def status(self) -> Status:
        """Nodes' states and which nodes hold each VIP now."""

    # commands -------------------------------------------------------------
    @abc.abstractmethod
    def run(self, node: str, argv: list[str], timeout: float = 60.0,
            input: str | None = None) -> Result:
        """Run argv on node; a non-zero exit is a Result, a transport failure raises."""

    @abc.abstractmethod
    def start(self, node: str, argv: list[str]) -> Running:
        """Start argv on node in the background (stdout collected until stop())."""

    @abc.abstractmethod
    def probe_argv(self) -> list[str]:
        """argv prefix that runs mailring/probe.py on the client node."""

    # faults ---------------------------------------------------------------
    @abc.abstractmethod
    def crash(self, node: str) -> None:
        """Power cut: every daemon dies at once, VIPs and link go with it."""

    @abc.abstractmethod
    def boot(self, node: str) -> None:
        """Start a crashed node again over the same disks (queues survive)."""

    @abc.abstractmethod
    def stop_service(self, node: str, name: str) -> None:
        """Stop one service on a running node (see SERVICES)."""

    @abc.abstractmethod
    def start_service(self, node: str, name: str) -> None:
        """Start a stopped service again."""

    @abc.abstractmethod
    def isolate(self, node: str) -> None:
        """Cut the node off the cluster network; its processes keep running."""

    @abc.abstractmethod
    def heal(self, node: str) -> None:
        """Undo isolate()."""

    @abc.abstractmethod
    def log_text(self, node: str, service: str) -> str:
        """The service's log on node, as the daemon wrote it."""

    def logs(self, node: str, service: str) -> list:
        """The service's log on node as structured records (mailring.logparse)."""
        from mailring.logparse import parse_lines

        return parse_lines(service, self.log_text(node, service))

    def exec_interactive(self, node: str, argv: list[str]) -> int:
        """Run argv on node with this terminal's stdio; return its exit code."""
        res = self.run(node, argv, timeout=3600)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        return res.rc

    # shared helpers --------------------------------------------------------
    def check_node(self, node: str) -> None:
        if node not in self.topology.nodes:
            names = ", ".join(self.topology.nodes)
            raise InputError(f"unknown node {node!r}; the nodes of {self.topology.path} are: {names}")

    def check_service(self, name: str) -> None:
        if name not in SERVICES:
            raise InputError(f"unknown service {name!r}; use one of: {', '.join(SERVICES)}")

    def haproxy_command(self, node: str, command: str) -> str:
        """Send one command to the node's HAProxy runtime API (admin level) and return its answer."""
        res = self.run(node, ["sh", "-c", 'printf "%s\\n" "$1" | socat stdio "unix-connect:$2"', "sh",
                              command, self.haproxy_socket])
        if not res.ok:
            raise TransportError(f"HAProxy runtime API on {node}: {res}")
        return res.stdout

    haproxy_socket: str  # the runtime API socket on a node; drivers take it from their flavour's manifest


def driver_class(name: str) -> type[Cluster]:
    """The Cluster class for a driver name, imported on first use."""
    if name not in DRIVERS:
        raise InputError(f"unknown driver {name!r}; supported drivers: {', '.join(sorted(DRIVERS))}")
    module, _, attr = DRIVERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def open_cluster(topology: Topology, driver: str = DEFAULT_DRIVER, lab: str = DEFAULT_LAB) -> Cluster:
    return driver_class(driver)(topology, lab=lab)
