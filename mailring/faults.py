"""Fault kinds as data: the one home of mailring's fault vocabulary.

Each ``FaultKind`` says what a fault is called (the CLI verb and the
``Nemesis`` shorthand), what undoes it, which ``Cluster`` methods apply and
undo it, what it takes as a target, and what it takes out of the cluster:

- ``CARP``: the node leaves the CARP election, so its VIPs move to backups
  (a crash, an isolated link, a frozen node where CARP runs in user space);
- ``HAPROXY``: only a server leaves HAProxy's pools; the VIPs stay where they
  are and every HAProxy's health checks route around it (a stopped or hung
  daemon, a drained server, a frozen node where CARP runs in the kernel).

Where this differs per OS the kind carries the rule (``by_os``, keyed by the
render flavour: ``debian`` runs ucarp, ``freebsd`` runs kernel CARP). The
CLI verbs, ``Nemesis``, the failed set convergence and readiness compute
(``carp_failed``), and ``Cluster.supports`` are all derived from this table;
adding a fault kind means adding a row here and its driver primitive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mailring.errors import InputError

CARP = "carp"
HAPROXY = "haproxy"
# The daemons a node runs, by the names the drivers know them (not the services clients reach).
DAEMONS = ("postfix", "dovecot", "haproxy", "carp", "webmail", "dns")


@dataclass(frozen=True)
class FaultKind:
    name: str  # CLI verb and Nemesis shorthand
    inverse: str  # the CLI verb that undoes it
    method: str  # the Cluster method that applies it: method(node, *targets)
    inverse_method: str  # the Cluster method that undoes it
    help: str
    inverse_help: str
    done: str  # past tense, for the CLI's answer
    undone: str
    takes: str | None = None  # what a target names: None, "daemon" or "service" (a topology service)
    target_required: bool = False
    takes_out: str = HAPROXY  # for the whole node (no target); a daemon target takes only itself out
    by_os: Mapping[str, str] = field(default_factory=dict)  # render flavour -> takes_out, where it differs
    state: str | None = None  # the node state recorded while a whole-node fault is active
    exclusive: bool = False  # the whole node is gone: no other fault may touch it meanwhile
    needs: tuple[str, ...] = ()  # driver primitives (Cluster methods) the kind is built on
    os_note: str = ""  # what an operator sees on each OS, for the docs

    def scope(self, targets: tuple[str, ...] = ()) -> str:
        """"node" when the fault takes the whole node, "service" when it takes parts of it."""
        return "node" if self.takes != "service" and not targets else "service"

    def out_of(self, flavour: str, targets: tuple[str, ...] = ()) -> str:
        """CARP or HAPROXY: what this fault takes the node out of on an OS flavour."""
        if self.takes == "daemon" and targets:
            return CARP if CARP in targets else HAPROXY
        if self.takes == "service":
            return HAPROXY
        return self.by_os.get(flavour, self.takes_out)


KINDS: dict[str, FaultKind] = {}


def register(kind: FaultKind) -> FaultKind:
    """Add a kind; a name or inverse already taken by another kind is refused."""
    for verb in (kind.name, kind.inverse):
        clash = [k.name for k in KINDS.values() if verb in (k.name, k.inverse)
                 and not (verb == kind.inverse == k.inverse and kind.inverse_method == k.inverse_method)]
        if clash:
            raise ValueError(f"fault verb {verb!r} of {kind.name!r} is already used by {clash[0]!r}")
    if kind.state is not None and any(k.state == kind.state for k in KINDS.values()):
        raise ValueError(f"node state {kind.state!r} of {kind.name!r} is already used")
    KINDS[kind.name] = kind
    return kind


def kind(name: str) -> FaultKind:
    """The kind named ``name``; an unknown name is an InputError listing the known ones."""
    if name not in KINDS:
        raise InputError(f"unknown fault kind {name!r}; use one of: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def kind_of_state(state: str) -> FaultKind | None:
    """The kind whose whole-node fault a recorded node state (crashed, isolated, ...) stands for."""
    return next((k for k in KINDS.values() if k.state == state), None)


def carp_failed(node_faults: Mapping[str, str], flavour: str) -> set[str]:
    """The nodes out of the CARP election given the recorded node faults (node -> state):
    the set the ownership model is asked about."""
    failed = set()
    for node, state in node_faults.items():
        k = kind_of_state(state)
        if k is None or k.out_of(flavour) == CARP:  # an unknown record: assume the worst
            failed.add(node)
    return failed


def verbs() -> dict[str, tuple[FaultKind, bool]]:
    """Every CLI verb -> (its kind, True if it is the kind's inverse)."""
    out: dict[str, tuple[FaultKind, bool]] = {}
    for k in KINDS.values():
        out.setdefault(k.name, (k, False))
        out.setdefault(k.inverse, (k, True))
    return out


register(FaultKind(
    "crash", "boot", "crash", "boot",
    "power cut: every daemon dies at once, VIPs and link go",
    "start a crashed node again over the same disks", "crashed", "booted",
    takes_out=CARP, state="crashed", exclusive=True, needs=("crash", "boot")))
register(FaultKind(
    "isolate", "heal", "isolate", "rejoin",
    "take the node's cluster link down, processes keep running",
    "undo isolate: the node's cluster link comes back", "isolated", "healed",
    takes_out=CARP, state="isolated", needs=("isolate", "rejoin")))
register(FaultKind(
    "stop", "start", "stop_daemon", "start_daemon",
    "stop one daemon on a node", "start a stopped daemon again", "stopped", "started",
    takes="daemon", target_required=True, needs=("stop_daemon", "start_daemon")))
register(FaultKind(
    "drain", "ready", "drain", "ready",
    "no new sessions to the node's own server (HAProxy runtime API)",
    "the node's own server takes sessions again", "set to drain", "set to ready",
    takes="service", needs=("haproxy_command",)))
register(FaultKind(
    "maint", "ready", "maint", "ready",
    "the node's own server out of HAProxy's rotation (runtime API); open sessions finish",
    "the node's own server takes sessions again", "set to maint", "set to ready",
    takes="service", needs=("haproxy_command",)))
register(FaultKind(
    "hang", "resume", "hang", "resume",
    "a hung server: SIGSTOP the daemon's processes (default: every daemon of the node); "
    "ports stay open, nothing answers",
    "SIGCONT what hang stopped", "hung", "resumed",
    takes="daemon", takes_out=CARP, by_os={"freebsd": HAPROXY}, state="hung", exclusive=True,
    needs=("freeze", "thaw"),
    os_note="A whole hung node: on Linux (ucarp, a daemon) CARP hangs with the rest, so a "
            "backup takes the node's VIPs while its kernel keeps the addresses; on FreeBSD "
            "kernel CARP keeps advertising, the VIPs stay, and only the other nodes' HAProxy "
            "checks route around its daemons."))
