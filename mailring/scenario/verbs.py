"""The fault verbs a scenario step may use, each with its inverse and what it takes.

Scenarios, the CLI and the nemesis speak the same vocabulary: a fault
(crash, stop, hang, isolate, drain) and the step that undoes it (boot, start,
resume, heal, ready).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    name: str
    inverse: str
    undoes: bool  # True for boot/start/resume/heal/ready: it ends an earlier fault
    takes: str | None  # None | "daemon" (postfix, dovecot, ...) | "service" (smtp, imap, ...)
    needs: bool  # the daemon/service must be given (stop postfix) or may be left out (drain)
    out_of_carp: bool  # the node stops advertising: its VIPs move (crash, isolate, a hung node)
    help: str


_FAULTS = (
    ("crash", "boot", None, False, True, "power cut: every daemon dies at once, VIPs and link go"),
    ("stop", "start", "daemon", True, False, "one daemon stopped on a running node"),
    ("hang", "resume", "daemon", False, True, "SIGSTOP of a daemon, or of every daemon of the node"),
    ("isolate", "heal", None, False, True, "the node's cluster link goes down, processes keep running"),
    ("drain", "ready", "service", False, False, "no new sessions to the node's own server in HAProxy"),
)

VERBS: dict[str, Verb] = {}
for _name, _inverse, _takes, _needs, _out, _help in _FAULTS:
    VERBS[_name] = Verb(_name, _inverse, False, _takes, _needs, _out, _help)
    VERBS[_inverse] = Verb(_inverse, _name, True, _takes, _needs, False, f"undo {_name}")


def target_of(verb: Verb, node: str, daemon: str | None, service: str | None) -> str:
    """What a fault disrupts; a fault and its inverse share it, two faults may not."""
    what = daemon if verb.takes == "daemon" else service
    return f"{node}/{what}" if what else node


def node_out_of_carp(verb: Verb, daemon: str | None) -> bool:
    """Does this (fault) step take the node out of CARP? A hung daemon does not; a hung node does."""
    if verb.name == "hang":
        return daemon is None
    return verb.out_of_carp
