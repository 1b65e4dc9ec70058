"""`mailring crash | boot | stop | start | isolate | heal | drain | ready`: faults by hand.

The same faults the suite injects, for an operator at a terminal. Each verb
waits for nothing but its own action; `mailring status` then shows the
faults and, per VIP, the owner against what the model expects.
"""

from __future__ import annotations

import argparse

from mailring.cli.common import add_common, cluster_of
from mailring.nemesis import set_server_state


def _node_verb(method: str, done: str):
    def run(args: argparse.Namespace) -> int:
        cluster = cluster_of(args)
        cluster.check_node(args.node)
        getattr(cluster, method)(args.node)
        print(f"{args.node} {done}; see: mailring status --lab {args.lab}")
        return 0

    return run


def _service_verb(method: str, done: str):
    def run(args: argparse.Namespace) -> int:
        cluster = cluster_of(args)
        cluster.check_node(args.node)
        getattr(cluster, method)(args.node, args.service)
        print(f"{args.service} {done} on {args.node}")
        return 0

    return run


def _haproxy_verb(state: str):
    def run(args: argparse.Namespace) -> int:
        cluster = cluster_of(args)
        cluster.check_node(args.node)
        services = (args.service,) if args.service else tuple(cluster.topology.services)
        set_server_state(cluster, args.node, services, state)
        print(f"{args.node}'s own server set to {state} in its HAProxy for: {', '.join(services)}")
        return 0

    return run


def register(sub: argparse._SubParsersAction) -> None:
    for verb, method, done, text in (
        ("crash", "crash", "crashed", "power cut: every daemon dies at once, VIPs and link go"),
        ("boot", "boot", "booted", "start a crashed node again over the same disks"),
        ("isolate", "isolate", "isolated", "take the node's cluster link down, processes keep running"),
        ("heal", "heal", "healed", "undo isolate"),
    ):
        p = sub.add_parser(verb, help=text)
        add_common(p)
        p.add_argument("node")
        p.set_defaults(func=_node_verb(method, done))
    for verb, method, done in (("stop", "stop_service", "stopped"), ("start", "start_service", "started")):
        p = sub.add_parser(verb, help=f"{verb} one service on a node")
        add_common(p)
        p.add_argument("node")
        p.add_argument("service", help="postfix | dovecot | haproxy | carp | webmail | dns")
        p.set_defaults(func=_service_verb(method, done))
    for verb, state, text in (("drain", "drain", "no new sessions to the node's own server (runtime API)"),
                              ("ready", "ready", "the node's own server takes sessions again")):
        p = sub.add_parser(verb, help=text)
        add_common(p)
        p.add_argument("node")
        p.add_argument("service", nargs="?", help="a topology service (default: all of them)")
        p.set_defaults(func=_haproxy_verb(state))
