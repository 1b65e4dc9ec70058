"""The fuzzer's alphabet and its model of the cluster: pure, no I/O.

A ``Move`` is one scenario step (a verb of the fault registry, a node and,
where the verb takes one, a daemon or service). ``FaultState`` holds the
faults a sequence has made so far and answers what the fuzzer may do next
and what the cluster must look like now:

- ``fault_moves(kind)`` / ``undo_moves(kind)``: every legal new fault of a
  kind, and the inverse of every active one. Legal means the ``Nemesis``
  would take it (no second fault on a target, nothing beside a whole-node
  fault) and a scenario file may hold it, and at least ``MIN_IN_CARP`` mail
  nodes stay in the CARP election.
- ``failed()``, ``owners()``: the model's failed set and VIP owners
  (``Topology.expected_owners``).
- ``served()``: which services each VIP must answer: its owner's HAProxy
  sends a session to the owner's own server, or to any other reachable node
  whose daemon runs (``backup`` servers), so a service is promised while one
  such server is left.
- ``load_bound()``: the ring's promise against the domino effect,
  ceil(VIPs / mail nodes in CARP).

The alphabet leaves out two faults the design does not route around, so a
run would only rediscover them: a whole hung node where CARP is a daemon
(ucarp hangs, and the hung kernel keeps answering ARP for its VIPs beside the
backup: docs/faults.md) and a stopped or hung HAProxy on a VIP holder (CARP
does not follow HAProxy). Daemons: the ones behind services, and ``carp``
for ``stop`` (the node leaves the election, its HAProxy and daemons stay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mailring import faults
from mailring.scenario.verbs import VERBS, node_out_of_carp, target_of
from mailring.topology import Topology

MIN_IN_CARP = 2  # mail nodes left in the election: the cluster stays a cluster
HANG_DAEMONS = ("postfix", "dovecot", "webmail")
STOP_DAEMONS = (*HANG_DAEMONS, "carp")


@dataclass(frozen=True)
class Move:
    """One step: ``verb`` (a fault or an inverse) on ``node`` (and its daemon or service)."""

    verb: str
    node: str
    daemon: str | None = None
    service: str | None = None

    @property
    def kind(self) -> str:
        return VERBS[self.verb].kind

    @property
    def undoes(self) -> bool:
        return VERBS[self.verb].undoes

    @property
    def target(self) -> str:
        """What the step disrupts, as a scenario file counts it (a fault and its inverse share it)."""
        return target_of(VERBS[self.verb], self.node, self.daemon, self.service)

    @property
    def objects(self) -> tuple[str, ...]:
        """The fault's targets as the Nemesis takes them (a daemon, or services)."""
        return tuple(x for x in (self.daemon, self.service) if x)

    @property
    def text(self) -> str:
        return " ".join([self.verb, self.node, *self.objects])

    def inverse(self) -> Move:
        return Move(VERBS[self.verb].inverse, self.node, self.daemon, self.service)

    def step(self) -> dict[str, str]:
        """The scenario file's step mapping (without time and expectations)."""
        out = {"do": self.verb, "node": self.node}
        if self.daemon:
            out["daemon"] = self.daemon
        if self.service:
            out["service"] = self.service
        return out


def _nemesis_conflict(a: Move, b: Move) -> bool:
    """The Nemesis's rule (``Fault.conflicts``): same target, or one is a whole-node fault
    that leaves nothing running on the same node."""
    from mailring.nemesis import Fault

    return Fault(a.kind, a.node, a.objects).conflicts(Fault(b.kind, b.node, b.objects))


@dataclass
class FaultState:
    """The faults a sequence has made and not undone, in order, and what the model says of them."""

    topo: Topology
    flavour: str = "debian"
    kinds: tuple[str, ...] = tuple(faults.KINDS)  # the kinds the driver supports
    active: dict[str, Move] = field(default_factory=dict)  # target -> the fault step

    # -- the alphabet -------------------------------------------------------------
    def candidates(self, kind: str) -> list[Move]:
        """Every fault of ``kind`` the fuzzer may try on this topology (legal or not now)."""
        k = faults.kind(kind)
        out = []
        for node in (n.name for n in self.topo.mail_nodes):
            if k.takes is None:
                out.append(Move(k.name, node))
            elif k.takes == "daemon":
                daemons = STOP_DAEMONS if kind == "stop" else HANG_DAEMONS
                out += [Move(k.name, node, daemon=d) for d in daemons if self.runs(d)]
            elif k.takes == "service":
                out += [Move(k.name, node)] + [Move(k.name, node, service=s) for s in self.topo.services]
        return out

    def runs(self, daemon: str) -> bool:
        """Mail nodes run this daemon (behind a service of the topology, or CARP)."""
        return daemon == "carp" or any(self.daemon_of(s) == daemon for s in self.topo.services)

    def legal(self, move: Move) -> bool:
        if move.undoes:
            return self.active.get(move.target) == move.inverse()
        busy = {m.target for m in self.active.values()}
        if move.target in busy or move.node in busy:  # what a scenario file allows
            return False
        if any(_nemesis_conflict(m, move) for m in self.active.values()):
            return False
        return len(self.in_carp(self.failed() | self.takes_out(move))) >= MIN_IN_CARP

    def fault_moves(self, kind: str) -> list[Move]:
        return [m for m in self.candidates(kind) if self.legal(m)] if kind in self.kinds else []

    def undo_moves(self, kind: str) -> list[Move]:
        return [m.inverse() for m in self.active.values() if m.kind == kind]

    def apply(self, move: Move) -> None:
        if not self.legal(move):
            raise ValueError(f"not a legal step now: {move.text}")
        if move.undoes:
            del self.active[move.target]
        else:
            self.active[move.target] = move

    # -- the model ----------------------------------------------------------------
    def takes_out(self, move: Move) -> set[str]:
        return {move.node} if node_out_of_carp(VERBS[move.verb], move.daemon, self.flavour) else set()

    def failed(self) -> set[str]:
        """Mail nodes out of the CARP election: the set the ownership model is asked about."""
        return {n for m in self.active.values() for n in self.takes_out(m)}

    def in_carp(self, failed: set[str] | None = None) -> list[str]:
        down = self.failed() if failed is None else failed
        return [n.name for n in self.topo.mail_nodes if n.name not in down]

    def owners(self) -> dict[str, str | None]:
        return self.topo.expected_owners(self.failed())

    def load_bound(self) -> int:
        """ceil(VIPs / mail nodes in CARP): the most VIPs one live node may hold."""
        return math.ceil(len(self.topo.vips) / max(len(self.in_carp()), 1))

    def daemon_of(self, service: str) -> str | None:
        svc = self.topo.services[service]
        return svc.daemon if svc.daemon else self.topo.services[svc.backend].daemon if svc.backend else None

    def _down(self, node: str, daemon: str | None) -> bool:
        """Is ``daemon`` on ``node`` stopped or hung, or the whole node crashed or hung?"""
        for m in self.active.values():
            if m.node == node and (m.kind in ("stop", "hang") and m.daemon in (None, daemon)
                                   or m.kind == "crash" or (m.kind == "hang" and m.daemon is None)):
                return True
        return False

    def _cut_off(self, node: str) -> bool:
        return any(m.node == node and m.kind in ("crash", "isolate") for m in self.active.values())

    def _drained(self, node: str, service: str) -> bool:
        return any(m.node == node and m.kind in ("drain", "maint") and m.service in (None, service)
                   for m in self.active.values())

    def served(self) -> dict[str, list[str]]:
        """VIP -> the services it must answer now (a VIP nobody holds answers none)."""
        out: dict[str, list[str]] = {}
        for vip, owner in self.owners().items():
            out[vip] = []
            if owner is None or self._down(owner, "haproxy"):
                continue
            for service in self.topo.services:
                daemon = self.daemon_of(service)
                local = not self._down(owner, daemon) and not self._drained(owner, service)
                remote = any(n.name != owner and not self._cut_off(n.name) and not self._down(n.name, daemon)
                             for n in self.topo.mail_nodes)
                if local or remote:
                    out[vip].append(service)
        return out
