"""`mailring up | down | status | exec | logs`: run a cluster and look inside it."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from mailring.cli.common import add_common, cluster_of
from mailring.cluster import Cluster
from mailring.errors import InputError


def status_dict(cluster: Cluster) -> dict:
    """The `status --json` shape: nodes with state/address, VIPs with owner/expected."""
    st = cluster.status()
    expected = cluster.topology.expected_owners(cluster.carp_failed(st))
    return {
        "nodes": {n: {"state": s.state, "address": s.address} for n, s in st.nodes.items()},
        "vips": {vip: {"owner": st.owner(vip), "expected": expected[vip],
                       "holders": st.holders.get(vip, [])}
                 for vip in expected},
    }


def cmd_up(args: argparse.Namespace) -> int:
    from mailring.scenario.progress import Progress, bring_up

    cluster = cluster_of(args)
    with Progress() as progress:
        bring_up(cluster, progress)
    print(f"lab {args.lab} is up ({args.driver}); try: mailring status --lab {args.lab}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster_of(args).down()
    print(f"lab {args.lab} is down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    data = status_dict(cluster_of(args))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    out = Console()
    nodes = Table("node", "state", "address", title=f"lab {args.lab}")
    for name, n in data["nodes"].items():
        style = "green" if n["state"] == "up" else "red"
        nodes.add_row(name, f"[{style}]{n['state']}[/]", n["address"])
    out.print(nodes)
    vips = Table("VIP", "held by", "expected", "", title="VIP owners")
    for vip, v in data["vips"].items():
        ok = v["owner"] == v["expected"] and len(v["holders"]) <= 1
        held = ", ".join(v["holders"]) or "nobody"
        vips.add_row(vip, held, v["expected"] or "nobody", "[green]ok[/]" if ok else "[red]DIFFERS[/]")
    out.print(vips)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if "--" in argv:  # options given after NODE, before "--": mailring exec client01 --lab x -- cmd
        cut = argv.index("--")
        late = argparse.ArgumentParser(add_help=False)
        add_common(late)
        late.parse_args(argv[:cut], namespace=args)
        argv = argv[cut + 1:]
    if not argv:
        raise InputError("exec: give a command after --, e.g. mailring exec client01 -- dig mail.ring.test")
    cluster = cluster_of(args)
    cluster.check_node(args.node)
    return cluster.exec_interactive(args.node, argv)


def cmd_logs(args: argparse.Namespace) -> int:
    cluster = cluster_of(args)
    cluster.check_node(args.node)
    sys.stdout.write(cluster.log_text(args.node, args.service))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    for name, func, text in (("up", cmd_up, "bring the cluster up (removes a stale lab first)"),
                             ("down", cmd_down, "remove everything the lab created")):
        p = sub.add_parser(name, help=text)
        add_common(p)
        p.set_defaults(func=func)
    p = sub.add_parser("status", help="nodes, and for every VIP its holder and the model's owner")
    add_common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("exec", help="run a command inside a node (its own resolver and files)")
    add_common(p)
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS")
    p.set_defaults(func=cmd_exec)
    p = sub.add_parser("logs", help="print a node's log of a service as the daemon wrote it")
    add_common(p)
    p.add_argument("node")
    p.add_argument("service", help="postfix | dovecot | haproxy | carp | webmail | dns ...")
    p.set_defaults(func=cmd_logs)
