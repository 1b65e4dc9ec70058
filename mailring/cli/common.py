"""Options every subcommand shares (--topology, --lab, --driver) and how they open things."""

from __future__ import annotations

import argparse
import os

from mailring.cluster import DEFAULT_DRIVER, DEFAULT_LAB, Cluster, open_cluster
from mailring.topology import DEFAULT_TOPOLOGY, Topology, load


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", default=os.environ.get("MAILRING_TOPOLOGY", str(DEFAULT_TOPOLOGY)),
                   help="topology file (default: fixtures/topology.yaml; env MAILRING_TOPOLOGY)")
    p.add_argument("--lab", default=os.environ.get("MAILRING_LAB", DEFAULT_LAB),
                   help=f"lab name, so several labs run side by side (default {DEFAULT_LAB}; "
                        "env MAILRING_LAB)")
    p.add_argument("--driver", default=os.environ.get("MAILRING_DRIVER", DEFAULT_DRIVER),
                   help=f"lab | vagrant (default {DEFAULT_DRIVER}; env MAILRING_DRIVER)")


def topology_of(args: argparse.Namespace) -> Topology:
    return load(args.topology)


def cluster_of(args: argparse.Namespace) -> Cluster:
    return open_cluster(topology_of(args), driver=args.driver, lab=args.lab)
