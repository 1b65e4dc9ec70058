"""The Vagrantfile's machine list, ``build/<lab>/vagrant.json``, made from the topology.

The Vagrantfile holds Vagrant syntax only: every machine name, address,
netmask, box, size and bundle folder comes from this list, which
``write_machine_list`` writes after the FreeBSD bundles are rendered. The
client node comes first, so it exports the shared mail store before the mail
nodes mount it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mailring.errors import InputError
from mailring.render import render
from mailring.render.engine import load_manifest
from mailring.topology import Topology

BUILD = Path(__file__).resolve().parents[3] / "build"
SCHEMA = 1
FLAVOUR = "freebsd"


def lab_root(lab: str, build: Path = BUILD) -> Path:
    return build / lab


def bundles_dir(lab: str, build: Path = BUILD) -> Path:
    """Where the FreeBSD bundles go (``mailring render --flavour freebsd``'s default)."""
    return lab_root(lab, build) / FLAVOUR


def machines_path(lab: str, build: Path = BUILD) -> Path:
    """The machine list the Vagrantfile reads (env MAILRING_VAGRANT_JSON overrides it there)."""
    return lab_root(lab, build) / "vagrant.json"


def check_freebsd(topo: Topology) -> None:
    """Refuse topologies the FreeBSD flavour cannot run.

    HAProxy binds every VIP on every mail node. FreeBSD has no
    ``ip_nonlocal_bind``: the bind works because each node carries every VIP
    as a CARP alias (in BACKUP state too), so each mail node must take part in
    every vhid.
    """
    for node in topo.mail_nodes:
        missing = [str(v.address) for v in topo.vips if v.skew_of(node.name) is None]
        if missing:
            raise InputError(
                f"{topo.path}: vips: {node.name} takes part in no vhid of {', '.join(missing)}; "
                "on FreeBSD every mail node must back up every VIP (HAProxy binds them all), "
                "so list it under backups")
    if not topo.vagrant.boxes:
        raise InputError(f"{topo.path}: vagrant.boxes: name a box for virtualbox and/or libvirt")


def machine_list(topo: Topology, roots: dict[str, Path], lab: str) -> dict[str, Any]:
    """The list as data: network, upload folder, and one entry per node (client first)."""
    paths = load_manifest(FLAVOUR).paths
    order = sorted(topo.nodes.values(), key=lambda n: (n.role != "client", n.name))
    netmask = str(topo.network.netmask)
    return {
        "schema": SCHEMA,
        "lab": lab,
        "topology": str(topo.path),
        "network": {"cidr": str(topo.network), "netmask": netmask,
                    "name": f"mailring-{topo.name}"},
        "bundle_dest": paths["bundle"],
        "apply": "apply.sh",
        "machines": [
            {
                "name": n.name,
                "role": n.role,
                "hostname": f"{n.name}.{topo.domain}",
                "address": str(n.address),
                "netmask": netmask,
                "boxes": dict(topo.vagrant.boxes),
                "memory": topo.vagrant.memory,
                "cpus": topo.vagrant.cpus,
                "bundle": str(Path(roots[n.name]).resolve()),
            }
            for n in order
        ],
    }


def write_machine_list(topo: Topology, roots: dict[str, Path], dest: Path | str,
                       lab: str) -> Path:
    """Write the machine list to ``dest`` (atomically) and return its path."""
    check_freebsd(topo)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(machine_list(topo, roots, lab), indent=2) + "\n")
    os.replace(tmp, dest)
    return dest


def render_lab(topo: Topology, lab: str, build: Path = BUILD) -> Path:
    """Render the FreeBSD bundles into build/<lab>/freebsd and write build/<lab>/vagrant.json."""
    check_freebsd(topo)
    roots = render(topo, FLAVOUR, bundles_dir(lab, build))
    return write_machine_list(topo, roots, machines_path(lab, build), lab)
