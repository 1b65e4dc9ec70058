"""The Vagrantfile's machine list, ``build/<lab>/vagrant.json``, made from the topology.

The Vagrantfile holds Vagrant syntax only: every machine name, address,
netmask, box, size, bundle folder, libvirt network name and the command that
applies a bundle comes from this list, which ``write_machine_list`` writes
after the guest OS's bundles are rendered (``vagrant.os`` picks the guest
adapter and with it the flavour). The client node comes first, so it exports
the shared mail store before the mail nodes mount it. Each lab has its own
libvirt networks (``mr-<lab>``, ``mr-<lab>-mgmt``), so two labs never share one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mailring.drivers.vagrant.guests import Guest, guest_for
from mailring.errors import InputError
from mailring.render import render
from mailring.render.engine import load_manifest
from mailring.topology import Topology

BUILD = Path(__file__).resolve().parents[3] / "build"
SCHEMA = 2
# vagrant-libvirt's management network (DHCP, SSH); its mode comes from MAILRING_LIBVIRT_MGMT
MGMT_CIDR = "192.168.121.0/24"


def lab_root(lab: str, build: Path = BUILD) -> Path:
    return build / lab


def bundles_dir(lab: str, guest: Guest, build: Path = BUILD) -> Path:
    """Where the guest's bundles go (``mailring render --flavour <flavour>``'s default)."""
    return lab_root(lab, build) / guest.flavour


def network_names(lab: str) -> dict[str, str]:
    """The lab's own libvirt networks: the cluster network and the management network."""
    return {"name": f"mr-{lab}", "mgmt_name": f"mr-{lab}-mgmt"}


def machines_path(lab: str, build: Path = BUILD) -> Path:
    """The machine list the Vagrantfile reads (env MAILRING_VAGRANT_JSON overrides it there)."""
    return lab_root(lab, build) / "vagrant.json"


def check_topology(topo: Topology) -> Guest:
    """The topology's guest adapter, once the topology is one it can run."""
    guest = guest_for(topo.vagrant.os)
    guest.check_topology(topo)
    if not topo.vagrant.boxes:
        raise InputError(f"{topo.path}: vagrant.boxes: name a box for virtualbox and/or libvirt")
    return guest


def machine_list(topo: Topology, roots: dict[str, Path], lab: str) -> dict[str, Any]:
    """The list as data: networks, guest, upload folder, one entry per node (client first)."""
    guest = guest_for(topo.vagrant.os)
    paths = load_manifest(guest.flavour).paths
    order = sorted(topo.nodes.values(), key=lambda n: (n.role != "client", n.name))
    netmask = str(topo.network.netmask)
    return {
        "schema": SCHEMA,
        "lab": lab,
        "topology": str(topo.path),
        "network": {"cidr": str(topo.network), "netmask": netmask, "mgmt_cidr": MGMT_CIDR,
                    **network_names(lab)},
        "guest": {"os": guest.os, "auto_config": guest.auto_config, "insert_key": guest.insert_key,
                  "apply": guest.apply_command(paths["bundle"])},
        "bundle_dest": paths["bundle"],
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
    check_topology(topo)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(machine_list(topo, roots, lab), indent=2) + "\n")
    os.replace(tmp, dest)
    return dest


def render_lab(topo: Topology, lab: str, build: Path = BUILD) -> Path:
    """Render the guest's bundles into build/<lab>/<flavour> and write build/<lab>/vagrant.json."""
    guest = check_topology(topo)
    roots = render(topo, guest.flavour, bundles_dir(lab, guest, build))
    return write_machine_list(topo, roots, machines_path(lab, build), lab)
