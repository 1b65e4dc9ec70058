"""The one interface every driver implements, and the driver registry.

Tests, the CLI, nemesis and probes talk to a ``Cluster`` only; the driver
behind it (``lab``: Linux namespaces on this host, ``vagrant``: FreeBSD VMs)
is chosen by name and imported on first use, so a driver's optional
dependencies never load unless it is picked. The faults a cluster can take
are named in ``mailring.faults``; ``Cluster.apply_fault``/``undo_fault`` and
``supports`` are driven by that table.
"""

from __future__ import annotations

import abc
import importlib
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mailring import faults
from mailring.errors import InputError
from mailring.speakers import SPEAKERS, Speaker

if TYPE_CHECKING:
    from mailring.topology import Topology

DRIVERS = {
    "lab": "mailring.drivers.lab.cluster:LabCluster",
    "vagrant": "mailring.drivers.vagrant.cluster:VagrantCluster",
}
DEFAULT_DRIVER = "lab"
DEFAULT_LAB = "mailring"
HAPROXY_STATES = ("ready", "drain", "maint")


class Unsupported(InputError):
    """The driver lacks the primitive a fault kind is built on."""


def optional_primitive(method):
    """Mark a base-class primitive that a driver may lack: the base raises Unsupported and
    ``Cluster.supports`` answers False for the kinds that need it until a driver overrides it."""
    method.__unsupported__ = True
    return method


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
    state: str  # up | down | the node state of an active whole-node fault (crashed, isolated, ...)
    address: str


@dataclass
class Status:
    nodes: dict[str, NodeStatus]
    holders: dict[str, list[str]]  # VIP -> nodes that hold it as CARP master now
    faults: dict[str, str] = field(default_factory=dict)  # node -> state of its whole-node fault

    def owner(self, vip: str) -> str | None:
        """The single holder of a VIP; None when nobody or several hold it."""
        held = self.holders.get(vip, [])
        return held[0] if len(held) == 1 else None


# What ``Cluster.up()`` tells ``Cluster.on_up`` per node, in this order (a driver tells the
# stages it has: the lab has no provisioning, a VM's first boot provisions it).
UP_STAGES = {
    "started": "started",
    "provisioned": "provisioned",
    "ready": "daemons running",
    "carp": "CARP converged",
}


@dataclass(frozen=True)
class UpStep:
    """One node's progress during ``Cluster.up()``."""

    node: str
    stage: str  # a key of UP_STAGES
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.node}: {UP_STAGES[self.stage]}" + (f" ({self.detail})" if self.detail else "")


class Running(abc.ABC):
    """A command started on a node that runs until stopped (a probe timeline)."""

    @abc.abstractmethod
    def peek(self) -> str:
        """Everything the command printed on stdout so far (it keeps running)."""

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> Result:
        """Close the command's stdin, wait for it to end and return its output."""


class Pipe(abc.ABC):
    """A command on a node talked to in lines for as long as it runs (the probe agent)."""

    @abc.abstractmethod
    def send(self, line: str) -> None:
        """Write one line (the newline is added) to the command's stdin; TransportError when it is gone."""

    @abc.abstractmethod
    def readline(self) -> str:
        """The next line of the command's stdout, blocking; "" once its stdout ended."""

    @abc.abstractmethod
    def stderr(self) -> str:
        """The last of what the command wrote on stderr."""

    @abc.abstractmethod
    def close(self, timeout: float = 10.0) -> int | None:
        """Close the command's stdin, wait for it to end (killed after ``timeout``); its exit code."""


class Cluster(abc.ABC):
    """A running (or startable) mail cluster built from one topology."""

    NAME = "abstract"
    FLAVOUR = "debian"  # the render flavour (OS) of the nodes; per-OS fault rules key on it
    # How fast a probe timeline samples this cluster's services and how long one attempt may
    # wait (mailring.checks.timelines): the lab answers in milliseconds at 20 Hz.
    PROBE_HZ = 20.0
    PROBE_TIMEOUT_S = 0.5
    # How long one sweep attempt (every service on every VIP at once) may wait, and how much
    # longer than CARP's bound + margin this driver's nodes may take to settle where the model
    # says (mailring.polling): the lab answers at once and ucarp never restarts there.
    SWEEP_TIMEOUT_S = 2.0
    SETTLE_S = 0.0
    # How late a node's CARP timers and adverts may run beyond its speaker's own allowance, as
    # the client hears them (mailring.checks.takeover): the lab's are the host's own.
    GUEST_LATE_S = 0.0
    # How many holder reads a HolderWatch must have made for its "never two holders" to count
    # (mailring.polling.holders): the lab's status() takes milliseconds.
    HOLDER_SAMPLES = 20
    # Whether faults on different nodes may be healed at once (Nemesis.heal_all): the lab boots
    # nodes side by side; a driver whose calls share state per run (the VMs' provider) heals in turn.
    HEALS_IN_PARALLEL = False

    def __init__(self, topology: Topology, lab: str = DEFAULT_LAB) -> None:
        self.topology = topology
        self.lab = lab
        # where up() copies the nodes' logs when it fails, before it removes what it made
        self.failure_logs: Path | None = None
        # gets each node's bring-up progress (UpStep) during up(), once per node and stage
        self.on_up: Callable[[UpStep], None] | None = None
        self._up_told: set[tuple[str, str]] | None = None  # during up(): the steps told

    # lifecycle ------------------------------------------------------------
    @abc.abstractmethod
    def up(self) -> None:
        """Bring every node and daemon up; return when each answers. Tell ``on_up`` each
        node's progress on the way (``up_begin``, ``up_step``, ``up_carp``, ``up_end``)."""

    def up_begin(self) -> None:
        """A driver's up() starts: from now until ``up_end`` its ``up_step`` calls reach ``on_up``."""
        self._up_told = set()

    def up_end(self) -> None:
        self._up_told = None

    def up_step(self, node: str, stage: str, detail: str = "") -> None:
        """Tell ``on_up`` that a node reached a stage (once per node and stage, during up())."""
        if stage not in UP_STAGES:
            raise ValueError(f"unknown bring-up stage {stage!r}; use one of {', '.join(UP_STAGES)}")
        if self._up_told is None or (node, stage) in self._up_told:
            return
        self._up_told.add((node, stage))
        if self.on_up is not None:
            self.on_up(UpStep(node, stage, detail))

    def up_carp(self, status: Status, failed: set[str] | frozenset[str] = frozenset()) -> None:
        """Tell ``carp`` for every mail node that alone holds the VIPs the model gives it (and
        holds no other); drivers call it with each status they poll while bringing the lab up."""
        expected = self.topology.expected_owners(failed)
        for node in self.topology.mail_nodes:
            if node.name in failed:
                continue
            mine = sorted(v for v, o in expected.items() if o == node.name)
            held = sorted(v for v, h in status.holders.items() if node.name in h)
            if mine == held and all(status.holders.get(v) == [node.name] for v in mine):
                self.up_step(node.name, "carp", f"holds {', '.join(mine) or 'no VIP'}")

    @abc.abstractmethod
    def down(self) -> None:
        """Remove everything this lab created; safe to call twice."""

    @abc.abstractmethod
    def status(self) -> Status:
        """Nodes' states and which nodes hold each VIP now."""

    def brought_up_from(self) -> tuple[str, str | None] | None:
        """The topology file a lab of this name was brought up from and its ``fingerprint()``
        (None in an older record), as the driver recorded them; None: no record of this lab."""
        return None

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

    @optional_primitive
    def open_pipe(self, node: str, argv: list[str]) -> Pipe:
        """Start argv on node with its stdin and stdout kept open as lines (see Pipe)."""
        raise Unsupported(f"the {self.NAME} driver cannot keep a command open (open_pipe)")

    # faults: driver primitives (mailring.faults names which kind needs which) --
    @abc.abstractmethod
    def crash(self, node: str) -> None:
        """Power cut: every daemon dies at once, VIPs and link go with it."""

    @abc.abstractmethod
    def boot(self, node: str) -> None:
        """Start a crashed node again over the same disks (queues survive)."""

    @abc.abstractmethod
    def stop_daemon(self, node: str, daemon: str) -> None:
        """Stop one daemon on a running node (see mailring.faults.DAEMONS)."""

    @abc.abstractmethod
    def start_daemon(self, node: str, daemon: str) -> None:
        """Start a stopped daemon again."""

    @abc.abstractmethod
    def isolate(self, node: str) -> None:
        """Cut the node off the cluster network; its processes keep running."""

    @abc.abstractmethod
    def rejoin(self, node: str) -> None:
        """Undo isolate(): the node's cluster link comes back."""

    @optional_primitive
    def freeze(self, node: str, daemon: str | None = None) -> None:
        """SIGSTOP the daemon's processes (None: every daemon of the node, not the OS itself)."""
        raise Unsupported(f"the {self.NAME} driver cannot stop processes (freeze)")

    @optional_primitive
    def thaw(self, node: str, daemon: str | None = None) -> None:
        """SIGCONT what freeze() stopped."""
        raise Unsupported(f"the {self.NAME} driver cannot continue processes (thaw)")

    @abc.abstractmethod
    def faults(self) -> dict[str, str]:
        """The whole-node faults in force, as recorded across CLI calls: node -> state."""

    @abc.abstractmethod
    def record_fault(self, node: str, state: str | None) -> None:
        """Record (or with None, forget) a node's whole-node fault state."""

    # faults: driven by the registry ----------------------------------------
    @classmethod
    def supports(cls, kind: str) -> bool:
        """Whether this driver implements every primitive the fault kind needs."""
        return all(cls.supports_primitive(p) for p in faults.kind(kind).needs)

    def require(self, kind: str) -> faults.FaultKind:
        """The fault kind, or Unsupported naming the driver and the missing primitives."""
        k = faults.kind(kind)
        if not self.supports(kind):
            raise Unsupported(f"the {self.NAME} driver cannot {kind}: it lacks "
                              f"{', '.join(p for p in k.needs if not self.supports_primitive(p))}")
        return k

    @classmethod
    def supports_primitive(cls, name: str) -> bool:
        """The driver has the method and it is neither abstract nor an unimplemented optional one."""
        method = getattr(cls, name, None)
        return callable(method) and not getattr(method, "__isabstractmethod__", False) \
            and not getattr(method, "__unsupported__", False)

    def apply_fault(self, kind: str, node: str, *targets: str) -> None:
        """Inflict a fault of ``kind`` on node (targets: a daemon, or topology services)."""
        k = self.require(kind)
        self.check_fault_targets(k, node, targets)
        getattr(self, k.method)(node, *targets)

    def undo_fault(self, kind: str, node: str, *targets: str) -> None:
        """Undo a fault of ``kind`` on node with the kind's inverse."""
        k = self.require(kind)
        self.check_fault_targets(k, node, targets)
        getattr(self, k.inverse_method)(node, *targets)

    def check_fault_targets(self, k: faults.FaultKind, node: str, targets: tuple[str, ...]) -> None:
        self.check_node(node)
        if k.target_required and not targets:
            raise InputError(f"{k.name} needs a {k.takes} on {node}")
        if k.takes is None and targets:
            raise InputError(f"{k.name} takes a node only, not {' '.join(targets)}")
        for t in targets:
            if k.takes == "daemon":
                self.check_daemon(t)
            elif k.takes == "service" and t not in self.topology.services:
                raise InputError(f"unknown service {t!r}; use one of {', '.join(self.topology.services)}")

    @property
    def carp_speaker(self) -> Speaker:
        """The program playing CARP on the nodes (its timing allowance past CARP's bound)."""
        return SPEAKERS["kernel" if self.FLAVOUR == "freebsd" else "ucarp"]

    def carp_failed(self, status: Status | None = None) -> set[str]:
        """Nodes out of the CARP election now (crashed, isolated, ... as this OS behaves)."""
        recorded = status.faults if status is not None else self.faults()
        return faults.carp_failed(recorded, self.FLAVOUR)

    def hang(self, node: str, daemon: str | None = None) -> None:
        """A hung server: the daemon's (or every daemon's) processes stopped, their ports open."""
        self.freeze(node, daemon)
        if daemon is None:
            self.record_fault(node, faults.kind("hang").state)

    def resume(self, node: str, daemon: str | None = None) -> None:
        """Undo hang()."""
        self.thaw(node, daemon)
        if daemon is None:
            self.record_fault(node, None)

    def drain(self, node: str, *services: str) -> None:
        """No new sessions to the node's own server for ``services`` (default: all)."""
        self.set_server_state(node, services, "drain")

    def maint(self, node: str, *services: str) -> None:
        """The node's own server out of rotation for ``services`` (default: all)."""
        self.set_server_state(node, services, "maint")

    def ready(self, node: str, *services: str) -> None:
        """The node's own server takes sessions again."""
        self.set_server_state(node, services, "ready")

    def set_server_state(self, node: str, services: tuple[str, ...], state: str) -> None:
        """``set server be_<svc>/<node> state <state>`` on the node's own HAProxy, checked."""
        from mailring.render.context import haproxy_backend

        if state not in HAPROXY_STATES:
            raise InputError(f"HAProxy server state {state!r}; use one of {', '.join(HAPROXY_STATES)}")
        for svc in services or tuple(self.topology.services):
            if svc not in self.topology.services:
                raise InputError(f"unknown service {svc!r}; use one of {', '.join(self.topology.services)}")
            answer = self.haproxy_command(node, f"set server {haproxy_backend(svc)}/{node} state {state}")
            if answer.strip():
                raise RuntimeError(f"HAProxy on {node} refused 'set server ... {state}': {answer.strip()}")

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

    def check_daemon(self, name: str) -> None:
        if name not in faults.DAEMONS:
            raise InputError(f"unknown daemon {name!r}; use one of: {', '.join(faults.DAEMONS)}")

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
