"""Faults with an inverse, applied to a Cluster and always healed.

A fault is a kind from ``mailring.faults`` (crash, isolate, stop, drain, ...)
on a node and its targets: ``invoke`` breaks something the way a real outage
does, ``undo`` applies the kind's inverse. A ``Nemesis`` applies faults, refuses to
fault the same target twice ("already disrupting ..."), records when each
fault started and ended, and heals everything still active in reverse order
on ``heal_all`` (each node's faults in turn, nodes side by side where the driver
allows; the pytest fixture and the CLI call it in ``finally``, so a failed test
or Ctrl-C never leaves a fault behind).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailring import faults
from mailring.interrupts import shielded

if TYPE_CHECKING:
    from mailring.cluster import Cluster


@dataclass(frozen=True)
class Fault:
    """One fault of a kind from ``mailring.faults``, on a node (and its targets, if any)."""

    kind: str
    node: str
    targets: tuple[str, ...] = ()

    @property
    def spec(self) -> faults.FaultKind:
        return faults.kind(self.kind)

    @property
    def target(self) -> str:
        """What the fault disrupts; two active faults may not share a target."""
        if self.spec.scope(self.targets) == "node":
            return self.node
        if self.spec.takes == "service":  # the node's own servers in its HAProxy
            return f"{self.node}/haproxy-servers"
        return f"{self.node}/{','.join(self.targets)}"

    def describe(self) -> str:
        if self.spec.takes == "service":
            return f"{self.kind} {self.node}'s own server for {', '.join(self.targets) or 'every service'}"
        return f"{self.kind} {' '.join(self.targets) + ' on ' if self.targets else ''}{self.node}"

    def conflicts(self, other: Fault) -> bool:
        """Same target, or the same node while either takes the whole node away."""
        whole = (self.spec.exclusive and self.spec.scope(self.targets) == "node") or \
                (other.spec.exclusive and other.spec.scope(other.targets) == "node")
        return self.target == other.target or (self.node == other.node and whole)

    def invoke(self, cluster: Cluster) -> None:
        cluster.apply_fault(self.kind, self.node, *self.targets)

    def undo(self, cluster: Cluster) -> None:
        cluster.undo_fault(self.kind, self.node, *self.targets)


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
        self.cluster.require(fault.kind)
        busy = [f for f in self.active if f.conflicts(fault)]
        if busy:
            raise RuntimeError(f"nemesis already disrupting {busy[0].target} ({busy[0].describe()}); "
                               f"refusing to {fault.describe()}")
        self.history.append(Event(time.time(), "invoke", fault.describe()))
        self.active.append(fault)  # before invoke: a fault that fails half-way is healed too
        fault.invoke(self.cluster)
        return fault

    def heal(self, fault: Fault) -> None:
        if fault not in self.active:
            raise RuntimeError(f"not started: {fault.describe()}")
        fault.undo(self.cluster)
        self.active.remove(fault)
        self.history.append(Event(time.time(), "heal", fault.describe()))

    def heal_all(self) -> list[str]:
        """Heal every active fault, newest first on each node; return the errors (the sweep keeps
        going). Where the driver allows it (``Cluster.HEALS_IN_PARALLEL``) the nodes heal side by
        side: three crashed servers boot at once, as after a power cut. A Ctrl-C or SIGTERM
        meanwhile waits until every fault is healed."""
        per_node: dict[str, list[Fault]] = {}
        for fault in reversed(list(self.active)):
            per_node.setdefault(fault.node, []).append(fault)
        with shielded():
            if len(per_node) > 1 and self.cluster.HEALS_IN_PARALLEL:
                with ThreadPoolExecutor(len(per_node)) as pool:
                    found = list(pool.map(self._heal_each, per_node.values()))
            else:
                found = [self._heal_each(node_faults) for node_faults in per_node.values()]
        return [error for errors in found for error in errors]

    def _heal_each(self, node_faults: list[Fault]) -> list[str]:
        """Heal these faults in turn; return the errors."""
        errors = []
        for fault in node_faults:
            try:
                self.heal(fault)
            except Exception as exc:  # keep healing the others
                errors.append(f"{fault.describe()}: {exc}")
                self.active.remove(fault)
        return errors

    def inflict(self, kind: str, node: str, *targets: str) -> Fault:
        """Apply a fault of a kind named in mailring.faults (the shorthands below are these)."""
        return self.apply(Fault(kind, node, tuple(targets)))

    # shorthands
    def crash(self, node: str) -> Fault:
        return self.inflict("crash", node)

    def isolate(self, node: str) -> Fault:
        return self.inflict("isolate", node)

    def stop(self, node: str, daemon: str) -> Fault:
        return self.inflict("stop", node, daemon)

    def drain(self, node: str, *services: str, state: str = "drain") -> Fault:
        """Set the node's own server to ``state`` (drain or maint) for services (default: all)."""
        return self.inflict(state, node, *services)

    def __enter__(self) -> Nemesis:
        return self

    def __exit__(self, *exc: object) -> None:
        errors = self.heal_all()
        if errors and exc[0] is None:
            raise RuntimeError("nemesis could not heal: " + "; ".join(errors))
