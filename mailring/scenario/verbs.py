"""The fault verbs a scenario step may use, each with its inverse and what it takes.

Scenarios, the CLI and the nemesis speak the same vocabulary, read here from
its one home, ``mailring.faults``: every fault kind (crash, stop, hang,
isolate, drain, maint) and the step that undoes it (boot, start, resume,
heal, ready).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailring import faults


@dataclass(frozen=True)
class Verb:
    name: str
    inverse: str
    undoes: bool  # True for boot/start/resume/heal/ready: it ends an earlier fault
    takes: str | None  # None | "daemon" (postfix, dovecot, ...) | "service" (smtp, imap, ...)
    needs: bool  # the daemon/service must be given (stop postfix) or may be left out (drain)
    kind: str  # the fault kind in mailring.faults
    help: str


def _verbs() -> dict[str, Verb]:
    out: dict[str, Verb] = {}
    for verb, (k, undoes) in faults.verbs().items():
        out[verb] = Verb(verb, k.name if undoes else k.inverse, undoes, k.takes, k.target_required,
                         k.name, k.inverse_help if undoes else k.help)
    return out


VERBS: dict[str, Verb] = _verbs()


def target_of(verb: Verb, node: str, daemon: str | None, service: str | None) -> str:
    """What a fault disrupts; a fault and its inverse share it, two faults may not."""
    what = daemon if verb.takes == "daemon" else service
    return f"{node}/{what}" if what else node


def node_out_of_carp(verb: Verb, daemon: str | None, flavour: str = "debian") -> bool:
    """Does this (fault) step take the node out of CARP on an OS flavour? (the registry's rule:
    a hung node does where CARP is a daemon, a hung daemon never does, stop carp always does)"""
    return faults.kind(verb.kind).out_of(flavour, (daemon,) if daemon else ()) == faults.CARP
