"""Fault verbs (`mailring crash | boot | stop | start | isolate | heal | drain | ready ...`).

One verb per kind and per inverse in ``mailring.faults``, for an operator at a
terminal: the same faults the suite injects. Each verb waits for nothing but
its own action; `mailring status` then shows the faults and, per VIP, the
owner against what the model expects.
"""

from __future__ import annotations

import argparse

from mailring import faults
from mailring.cli.common import add_common, cluster_of

TARGET_HELP = {
    "daemon": " | ".join(faults.DAEMONS),
    "service": "a topology service (default: all of them)",
}


def _verb(kind: faults.FaultKind, inverse: bool):
    def run(args: argparse.Namespace) -> int:
        cluster = cluster_of(args)
        targets = tuple(t for t in [getattr(args, "target", None)] if t)
        (cluster.undo_fault if inverse else cluster.apply_fault)(kind.name, args.node, *targets)
        done = kind.undone if inverse else kind.done
        if kind.takes == "service":
            what = f"{args.node}'s own server in its HAProxy for {', '.join(targets) or 'every service'}"
        else:
            what = f"{' '.join(targets)} on {args.node}" if targets else args.node
        print(f"{what} {done}; see: mailring status --lab {args.lab}")
        return 0

    return run


def register(sub: argparse._SubParsersAction) -> None:
    for verb, (kind, inverse) in faults.verbs().items():
        p = sub.add_parser(verb, help=kind.inverse_help if inverse else kind.help)
        add_common(p)
        p.add_argument("node")
        if kind.takes:
            p.add_argument("target", metavar=kind.takes, nargs=None if kind.target_required else "?",
                           help=TARGET_HELP[kind.takes])
        p.set_defaults(func=_verb(kind, inverse))
