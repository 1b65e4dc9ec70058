"""`mailring validate` and `mailring render`: the topology and its config bundles."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mailring.cli.common import add_common, topology_of
from mailring.errors import InputError
from mailring.render import render
from mailring.render.engine import FLAVOURS
from mailring.topology import validate


def cmd_validate(args: argparse.Namespace) -> int:
    path = args.file or args.topology
    errors = validate(path)
    if errors:  # one line: the first problem; the count says more are behind it
        more = f" ({len(errors) - 1} more after this one)" if len(errors) > 1 else ""
        raise InputError(errors[0] + more)
    topo = topology_of(argparse.Namespace(topology=path))
    out = Console()
    mail = len(topo.mail_nodes)
    print(f"{path}: ok: {len(topo.nodes)} nodes ({mail} mail, {len(topo.nodes) - mail} client), "
              f"{len(topo.vips)} VIPs, {len(topo.dns.names)} DNS names in {topo.dns.zone}, "
              f"proxy_protocol {'on' if topo.proxy_protocol else 'off'}")
    table = Table("VIP", "vhid", "owner", "backups (advskew)", title="CARP ring")
    for v in topo.vips:
        table.add_row(str(v.address), str(v.vhid), v.owner,
                      ", ".join(f"{n} ({s})" for n, s in v.backups))
    out.print(table)
    print("DNS: " + ", ".join(f"{n} ({len(topo.dns.records[n])} A, TTL {topo.dns.ttl})"
                                  for n in topo.dns.names))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    topo = topology_of(args)
    out = Path(args.out) if args.out else Path("build") / args.lab / args.flavour
    roots = render(topo, args.flavour, out)
    for node, root in roots.items():
        print(f"{node}: {root}")
    from mailring.drivers.vagrant.guests import guest_for

    if args.flavour == guest_for(topo.vagrant.os).flavour:  # the machine list the Vagrantfile reads
        from mailring.drivers.vagrant.machines import machines_path, write_machine_list

        print("machine list:", write_machine_list(topo, roots, machines_path(args.lab), args.lab))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a topology file and print its summary")
    add_common(p)
    p.add_argument("file", nargs="?", help="topology file (default: --topology)")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("render", help="render config bundles for every node")
    add_common(p)
    p.add_argument("--flavour", choices=FLAVOURS, default="debian")
    p.add_argument("--out", help="output folder (default build/<lab>/<flavour>)")
    p.set_defaults(func=cmd_render)
