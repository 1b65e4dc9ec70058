"""What of a confined VM run shows where it must not (mailring.drivers.vagrant.confine).

While the run goes, the host namespace must show no address on a VM network and
no VM device (``host_leaks``, checked at start, once a second and at the end by
``HostWatch``); after its teardown, nothing of the run may be left (``leftovers``): no libvirt
definition, no QEMU of its domains, none of the daemons it started, no namespace, no pool
folder. Both are checked by the run itself, so CI fails when either is broken.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from ipaddress import IPv4Network, ip_interface
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailring.drivers.vagrant.confine import Names

LIBVIRT_ETC = Path("/etc/libvirt")


class HostWatch:
    """Checks the host namespace when started, once a second while the command runs, and
    once more when stopped: no address on a VM network, no VM device. A command that ends
    within a second is still checked twice, so "clean" never rests on zero checks."""

    def __init__(self, networks: list[IPv4Network],
                 leaks: Callable[[list[IPv4Network]], str] | None = None) -> None:
        self.networks = networks
        self.seen: list[str] = []
        self.checks = 0
        self._leaks = leaks or host_leaks
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.check()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.check()

    def check(self) -> None:
        problem = self._leaks(self.networks)
        with self._lock:
            self.checks += 1
            if problem and problem not in self.seen:
                self.seen.append(problem)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.check()


def host_leaks(networks: list[IPv4Network], text: str | None = None) -> str:
    """What of the VMs shows in this namespace (``ip -j addr``): "" when nothing does."""
    if text is None:
        text = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout
    leaks = []
    for link in json.loads(text or "[]"):
        name = link.get("ifname", "")
        if name.startswith(("vnet", "virbr")) or name.startswith("mr-"):
            leaks.append(f"device {name}")
        for a in link.get("addr_info", []):
            if a.get("family") != "inet":
                continue
            addr = ip_interface(f"{a['local']}/{a.get('prefixlen', 32)}")
            if any(addr.ip in net for net in networks):
                leaks.append(f"{a['local']} on {name}")
    return ", ".join(leaks)


def on_disk(names: Names, etc: Path = LIBVIRT_ETC) -> bool:
    """Persistent definitions of the lab's domains, networks or pool (libvirt keeps them in
    /etc), as a SIGKILLed run may leave them."""
    doms = any(names.domain(p.stem) for p in (etc / "qemu").glob("*.xml"))
    nets = any(names.network(p.stem) for p in (etc / "qemu" / "networks").glob("*.xml"))
    pools = (etc / "storage" / f"{names.pool}.xml").exists()
    return doms or nets or pools


def _cmdline(pid: str, proc: Path) -> str:
    try:
        return (proc / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # it ended meanwhile
        return ""


def zombie(pid: int, proc: Path = Path("/proc")) -> bool:
    """The process has ended: it is a zombie, or gone (True then too)."""
    try:
        return (proc / str(pid) / "stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _alive(pid: int, name: str, proc: Path) -> bool:
    """The process lives, is not a zombie, and is still ``name`` (not a reused PID)."""
    try:
        comm = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return False
    return comm == name and not zombie(pid, proc)


def leftovers(names: Names, pids: dict[str, int], proc: Path = Path("/proc"),
              etc: Path = LIBVIRT_ETC, netns: Path = Path("/run/netns")) -> list[str]:
    """Everything of the run still there after its teardown, one phrase each; [] when clean."""
    left = []
    if (netns / names.netns).exists():
        left.append(f"namespace {names.netns}")
    if on_disk(names, etc):
        left.append(f"libvirt definitions of lab {names.lab} in {etc}")
    for daemon, pid in sorted(pids.items()):
        if _alive(pid, daemon, proc):
            left.append(f"{daemon} pid {pid}")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and f"guest={names.lab}-" in _cmdline(entry.name, proc):
            left.append(f"QEMU pid {entry.name} of a {names.lab} domain")
    if names.pool_dir.exists():
        left.append(f"pool folder {names.pool_dir}")
    return left
