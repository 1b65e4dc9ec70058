"""Faults with an inverse, applied to a Cluster and always healed.

Each fault is a small object: ``invoke`` breaks something the way a real
outage does, ``heal`` undoes it. A ``Nemesis`` applies faults, refuses to
fault the same target twice ("already disrupting ..."), records when each
fault started and ended, and heals everything still active in reverse order
on ``heal_all`` (the pytest fixture and the CLI call it in ``finally``, so a
failed test or Ctrl-C never leaves a fault behind).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailring.errors import InputError
from mailring.render.context import haproxy_backend

if TYPE_CHECKING:
    from mailring.cluster import Cluster

HAPROXY_STATES = ("ready", "drain", "maint")


@dataclass
class Fault:
    node: str

    @property
    def target(self) -> str:
        """What the fault disrupts; two active faults may not share a target."""
        return self.node

    def describe(self) -> str:
        raise NotImplementedError

    def invoke(self, cluster: Cluster) -> None:
        raise NotImplementedError

    def heal(self, cluster: Cluster) -> None:
        raise NotImplementedError


@dataclass
class Crash(Fault):
    """Power cut: every daemon of the node dies at once; heal boots it over the same disks."""

    def describe(self) -> str:
        return f"crash {self.node}"

    def invoke(self, cluster: Cluster) -> None:
        cluster.crash(self.node)

    def heal(self, cluster: Cluster) -> None:
        cluster.boot(self.node)


@dataclass
class Isolate(Fault):
    """The node's cluster link goes down; its processes keep running (split-brain risk)."""

    def describe(self) -> str:
        return f"isolate {self.node}"

    def invoke(self, cluster: Cluster) -> None:
        cluster.isolate(self.node)

    def heal(self, cluster: Cluster) -> None:
        cluster.heal(self.node)


@dataclass
class StopService(Fault):
    """One daemon stopped on a running node."""

    service: str = ""

    @property
    def target(self) -> str:
        return f"{self.node}/{self.service}"

    def describe(self) -> str:
        return f"stop {self.service} on {self.node}"

    def invoke(self, cluster: Cluster) -> None:
        cluster.stop_service(self.node, self.service)

    def heal(self, cluster: Cluster) -> None:
        cluster.start_service(self.node, self.service)


@dataclass
class HaproxyState(Fault):
    """The node's own server in its HAProxy set to drain or maint (runtime API, as HATop does)."""

    services: tuple[str, ...] = ()
    state: str = "drain"

    @property
    def target(self) -> str:
        return f"{self.node}/haproxy-servers"

    def describe(self) -> str:
        return f"{self.state} {self.node}'s own server for {', '.join(self.services)}"

    def invoke(self, cluster: Cluster) -> None:
        set_server_state(cluster, self.node, self.services, self.state)

    def heal(self, cluster: Cluster) -> None:
        set_server_state(cluster, self.node, self.services, "ready")


def set_server_state(cluster: Cluster, node: str, services: tuple[str, ...], state: str) -> None:
    """``set server be_<svc>/<node> state <state>`` on the node's own HAProxy, checked."""
    if state not in HAPROXY_STATES:
        raise InputError(f"HAProxy server state {state!r}; use one of {', '.join(HAPROXY_STATES)}")
    for svc in services or tuple(cluster.topology.services):
        if svc not in cluster.topology.services:
            raise InputError(f"unknown service {svc!r}; use one of {', '.join(cluster.topology.services)}")
        answer = cluster.haproxy_command(node, f"set server {haproxy_backend(svc)}/{node} state {state}")
        if answer.strip():
            raise RuntimeError(f"HAProxy on {node} refused 'set server ... {state}': {answer.strip()}")


@dataclass
class Event:
    t: float
    what: str  # invoke | heal
    fault: str


@dataclass
class Nemesis:
    """Applies faults to one cluster and guarantees they are healed."""

    cluster: Cluster
    active: list[Fault] = field(default_factory=list)
    history: list[Event] = field(default_factory=list)

    def apply(self, fault: Fault) -> Fault:
        busy = [f for f in self.active if f.target == fault.target or
                (isinstance(f, Crash) and f.node == fault.node)]
        if busy:
            raise RuntimeError(f"nemesis already disrupting {busy[0].target} ({busy[0].describe()}); "
                               f"refusing to {fault.describe()}")
        self.history.append(Event(time.time(), "invoke", fault.describe()))
        fault.invoke(self.cluster)
        self.active.append(fault)
        return fault

    def heal(self, fault: Fault) -> None:
        if fault not in self.active:
            raise RuntimeError(f"not started: {fault.describe()}")
        fault.heal(self.cluster)
        self.active.remove(fault)
        self.history.append(Event(time.time(), "heal", fault.describe()))

    def heal_all(self) -> list[str]:
        """Heal every active fault, newest first; return the errors (the sweep keeps going)."""
        errors = []
        for fault in reversed(list(self.active)):
            try:
                self.heal(fault)
            except Exception as exc:  # keep healing the others
                errors.append(f"{fault.describe()}: {exc}")
                self.active.remove(fault)
        return errors

    # shorthands
    def crash(self, node: str) -> Fault:
        return self.apply(Crash(node))

    def isolate(self, node: str) -> Fault:
        return self.apply(Isolate(node))

    def stop(self, node: str, service: str) -> Fault:
        return self.apply(StopService(node, service))

    def drain(self, node: str, *services: str, state: str = "drain") -> Fault:
        return self.apply(HaproxyState(node, tuple(services), state))

    def __enter__(self) -> Nemesis:
        return self

    def __exit__(self, *exc: object) -> None:
        errors = self.heal_all()
        if errors and exc[0] is None:
            raise RuntimeError("nemesis could not heal: " + "; ".join(errors))
