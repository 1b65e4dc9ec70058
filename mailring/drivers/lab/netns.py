"""The lab's network: a bridge in a namespace of its own, one namespace per node.

The host's own namespace gets no interface on the lab network: the bridge
lives in ``mr-<lab>-lan`` and each node's veth is created there, its other
end moved straight into the node's namespace as ``eth0``. Nodes have no
default route, so nothing can leave the machine.

Every node knows every other node's own address as a permanent neighbour
entry (its eth0 has a MAC derived from its address). The lab's namespaces share
one kernel, and Linux keeps one ARP table for all of them: past
``net.ipv4.neigh.default.gc_thresh3`` (1024) learned entries in all namespaces
together it refuses new ones ("neighbor table overflow") and drops the packets
that needed them, CARP's multicast adverts among them. On a ring of 50 every
HAProxy checks 50 servers, 2,550 entries; each real server has a table of its
own. Permanent entries do not count against the limit. The VIPs move, so
their entries stay learned from ARP, as the client's tests need.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from mailring.drivers.lab.names import BRIDGE, REPO

NETNS_DIR = Path("/run/netns")
NODE_IF = "eth0"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res


def existing() -> set[str]:
    out = ip("netns", "list").stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def inode_link(ns: str) -> str | None:
    """How /proc/<pid>/ns/net reads for a process in the named namespace (None: no such one)."""
    try:
        return f"net:[{os.stat(NETNS_DIR / ns).st_ino}]"
    except FileNotFoundError:
        return None


def pids_by_namespace(names: Iterable[str]) -> dict[str, list[int]]:
    """The processes in each named namespace, from one pass over /proc (``ip netns pids``
    scans all of /proc for one namespace; a lab of 50 nodes asks for all of them at once)."""
    want = {link: ns for ns in names if (link := inode_link(ns)) is not None}
    out: dict[str, list[int]] = {ns: [] for ns in want.values()}
    if not want:
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = want.get(os.readlink(f"/proc/{entry.name}/ns/net"))
        except OSError:
            continue
        if ns is not None:
            out[ns].append(int(entry.name))
    return out


def make_lan(ns: str) -> None:
    ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0")
    ip("-n", ns, "link", "set", BRIDGE, "up")


def mac_of(address: str) -> str:
    """A node's eth0 MAC: locally administered, its IPv4 address in the last four bytes."""
    return "02:6d:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def make_node(lan: str, ns: str, port: str, address: str, prefixlen: int, peers: Iterable[str]) -> None:
    """A node namespace with eth0 on the bridge, its address, multicast for CARP, and the
    other nodes' own addresses (``peers``) as permanent neighbours."""
    ip("netns", "add", ns)
    ip("-n", lan, "link", "add", port, "type", "veth", "peer", "name", NODE_IF, "address",
       mac_of(address), "netns", ns)
    ip("-n", lan, "link", "set", port, "master", BRIDGE, "up")
    batch(ns, ["link set lo up", f"addr add {address}/{prefixlen} dev {NODE_IF}",
               f"link set {NODE_IF} up", f"route add 224.0.0.0/4 dev {NODE_IF}",
               *neighbour_lines(peers)])
    sysctl(ns, "net.ipv4.ip_nonlocal_bind", "1")


def neighbour_lines(peers: Iterable[str]) -> list[str]:
    return [f"neigh replace {a} lladdr {mac_of(a)} nud permanent dev {NODE_IF}" for a in peers]


def batch(ns: str, lines: list[str]) -> None:
    """Run ``ip`` commands in a namespace with one process (``ip -batch``)."""
    res = subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"ip -n {ns} -batch: {res.stderr.strip()}")


def load_filter(ns: str, rules: str) -> None:
    """Load a node's packet filter (an nftables file) into its namespace; it stays there
    across the node's crashes and boots, as the namespace does."""
    res = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", rules], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise RuntimeError(f"nft -f {rules} in {ns}: {res.stderr.strip()}")


def take_gratuitous_arp(ns: str) -> None:
    """Make a client take a new VIP owner's gratuitous ARP at once: ``arp_accept`` (also
    create entries from it) and neighbour ``locktime`` 0 (Linux otherwise ignores an update
    within 1 s of the entry's last change and the client keeps sending to the dead owner)."""
    sysctl(ns, f"net.ipv4.conf.{NODE_IF}.arp_accept", "1")
    sysctl(ns, f"net.ipv4.neigh.{NODE_IF}.locktime", "0")


def sysctl(ns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}"], check=True)


def link(ns: str, up: bool, peers: Iterable[str] = ()) -> None:
    """Plug or unplug a node's cable (its eth0 in the node's namespace). Unplugging drops
    its routes and neighbours, permanent ones too; plugging it in puts them back."""
    if not up:
        ip("-n", ns, "link", "set", NODE_IF, "down")
        return
    batch(ns, [f"link set {NODE_IF} up", f"route replace 224.0.0.0/4 dev {NODE_IF}",
               *neighbour_lines(peers)])


def bridge_port(lan: str, port: str, forwarding: bool) -> None:
    """Let a node's traffic through the lab's bridge, or drop all of it there.

    Isolation drops traffic at the switch port and leaves the node's NIC up:
    ucarp exits when its interface goes down, kernel CARP would not.
    """
    subprocess.run(["ip", "netns", "exec", lan, "bridge", "link", "set", "dev", port,
                    "state", "3" if forwarding else "0"], check=True, capture_output=True)


def addresses(ns: str, dev: str = NODE_IF) -> list[str]:
    out = ip("-n", ns, "-o", "-4", "addr", "show", "dev", dev, check=False).stdout
    return [line.split()[3] for line in out.splitlines() if len(line.split()) > 3]


def local_addresses(pid: int) -> set[str]:
    """The IPv4 addresses local to the namespace of process ``pid`` (its /32 host LOCAL routes in
    /proc/<pid>/net/fib_trie): what ``addresses`` says without starting a process per node."""
    try:
        lines = Path(f"/proc/{pid}/net/fib_trie").read_text().splitlines()
    except OSError:
        return set()
    return {lines[i - 1].split()[-1] for i, line in enumerate(lines)
            if i and line.strip() == "/32 host LOCAL"}


def stage_vips(ns: str, vips: list[str]) -> list[str]:
    """Make before break: a booting owner holds its VIPs and tells the LAN (gratuitous ARP)
    before its CARP speaker starts and takes them over; returns the VIPs staged.

    FreeBSD keeps a CARP address configured on every node of the vhid, only the master answers
    for it, and a new master sends its advert and its gratuitous ARP back to back. keepalived
    removes its VIPs when it starts, sends the advert, then adds them, then the ARP: for that
    moment the old holder has let go and the client still sends to it. Staged on ``lo`` (where
    keepalived, which minds its own addresses on eth0, leaves them), the VIPs are local and the
    client sends to the owner before the old holder lets go. ``unstage_vips`` removes them
    once keepalived holds them; until then both nodes hold them, which the model forgives for
    one takeover (``checks.holders.handovers``)."""
    have = {a.split("/")[0] for a in addresses(ns)}
    new = [v for v in vips if v not in have]
    if not new:
        return []
    batch(ns, [f"addr replace {v}/32 dev lo" for v in new])
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "mailring.drivers.lab.garp",
                          NODE_IF, *new], capture_output=True, text=True, timeout=10,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    if res.returncode != 0:
        unstage_vips(ns, new, deadline_s=0)
        raise RuntimeError(f"gratuitous ARP from {ns} for {', '.join(new)}: {res.stderr.strip()}")
    return new


def unstage_vips(ns: str, vips: list[str], deadline_s: float) -> list[str]:
    """Wait (up to ``deadline_s``) until the CARP speaker holds the staged VIPs on eth0, then
    remove them from ``lo`` whatever it holds; returns the VIPs it did not take over."""
    def missing() -> list[str]:
        held = {a.split("/")[0] for a in addresses(ns)}
        return [v for v in vips if v not in held]

    try:
        left = Retrying(stop=stop_after_delay(deadline_s), wait=wait_fixed(0.01), retry=retry_if_result(bool),
                        retry_error_callback=lambda state: state.outcome.result())(missing)
    finally:
        batch(ns, [f"addr del {v}/32 dev lo" for v in vips])
    return left


def drop_addresses(ns: str, keep: str) -> None:
    """Remove every address of eth0 except the node's own (the VIPs a dead node held), and
    any VIP still staged on lo (``stage_vips``: a run killed between staging and takeover)."""
    for cidr in addresses(ns):
        if cidr.split("/")[0] != keep:
            ip("-n", ns, "addr", "del", cidr, "dev", NODE_IF, check=False)
    for cidr in addresses(ns, "lo"):
        if not cidr.startswith("127."):
            ip("-n", ns, "addr", "del", cidr, "dev", "lo", check=False)


def remove(ns: str) -> str | None:
    """Delete a namespace; returns an error text instead of raising (sweeps keep going)."""
    res = ip("netns", "del", ns, check=False)
    return None if res.returncode == 0 else res.stderr.strip()
