"""What the lab needs from this host before it touches anything: root and the daemons."""

from __future__ import annotations

import os
import shutil
import subprocess

from mailring import protocols
from mailring.errors import InputError

# tool -> Debian package(s) that provide it; the mail daemons' come from mailring.protocols
TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "haproxy": "haproxy",
    **{d.tool: " ".join(protocols.daemon_packages(d.name, "debian")) for d in protocols.DAEMONS.values()},
    **{d.tool: " ".join(d.packages["debian"]) for d in protocols.SYSTEM.values()},
    "nsd": "nsd",
    "unbound": "unbound",
    "socat": "socat",
}
# modules the nodes' own python3 needs (the node init and the client's probe)
NODE_MODULES = {"yaml": "python3-yaml", "dns": "python3-dnspython"}


def check(carp_speaker: str = "keepalived") -> None:
    """Raise InputError (exit 2) when not root or a tool is missing (the mail daemons, DNS and
    the lab's CARP speaker, keepalived or ucarp); touch nothing."""
    if os.geteuid() != 0:
        raise InputError("the lab driver needs root (network, mount and PID namespaces); "
                         "run as root, e.g. sudo mailring up")
    missing = sorted({pkg
                      for tool, pkg in {**TOOLS, carp_speaker: carp_speaker}.items()
                      if shutil.which(tool, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                                 "/usr/bin:/sbin:/bin") is None})
    for module, pkg in NODE_MODULES.items():
        found = subprocess.run(["/usr/bin/python3", "-c", f"import {module}"], capture_output=True)
        if found.returncode != 0:
            missing.append(pkg)
    if missing:
        raise InputError("the lab needs system tools that are missing; install them with: "
                         f"apt-get install -y {' '.join(missing)} (scripts/setup.sh installs them all)")
