"""Pure parsers for what FreeBSD and Vagrant print, so the driver's reading is unit-testable.

- ``parse_ifconfig``: FreeBSD ``ifconfig`` output -> interfaces with flags,
  IPv4 addresses (with their vhid) and CARP states (``carp: MASTER vhid 1
  advbase 1 advskew 0``; 14.x adds a ``peer 224.0.0.18 peer6 ff02::12`` line).
- ``carp_masters``: which VIPs a node holds as CARP master.
- ``parse_machine_status``: ``vagrant status --machine-readable``.
- ``parse_ssh_config``: ``vagrant ssh-config`` (one or several Host blocks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IF_HEAD = re.compile(r"^(?P<name>[A-Za-z0-9_.]+): flags=[0-9a-f]+<(?P<flags>[^>]*)>")
_INET = re.compile(r"^\s+inet (?P<addr>\d+\.\d+\.\d+\.\d+) netmask (?P<mask>0x[0-9a-f]+)"
                   r"(?:.*?\bvhid (?P<vhid>\d+))?")
_CARP = re.compile(r"^\s+carp: (?P<state>[A-Z]+) vhid (?P<vhid>\d+) advbase (?P<advbase>\d+)"
                   r" advskew (?P<advskew>\d+)")


@dataclass(frozen=True)
class CarpState:
    state: str  # INIT | BACKUP | MASTER
    vhid: int
    advbase: int
    advskew: int


@dataclass
class Interface:
    name: str
    flags: frozenset[str]
    inet: list[tuple[str, int | None]] = field(default_factory=list)  # (address, vhid)
    carp: dict[int, CarpState] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return "UP" in self.flags

    def has(self, address: str) -> bool:
        return any(a == address for a, _ in self.inet)


def parse_ifconfig(text: str) -> dict[str, Interface]:
    """Interfaces of ``ifconfig`` (or ``ifconfig IF``) output, by name, in order."""
    out: dict[str, Interface] = {}
    cur: Interface | None = None
    for line in text.splitlines():
        head = _IF_HEAD.match(line)
        if head:
            flags = frozenset(f for f in head["flags"].split(",") if f)
            cur = out[head["name"]] = Interface(head["name"], flags)
            continue
        if cur is None:
            continue
        inet = _INET.match(line)
        if inet:
            cur.inet.append((inet["addr"], int(inet["vhid"]) if inet["vhid"] else None))
            continue
        carp = _CARP.match(line)
        if carp:
            st = CarpState(carp["state"], int(carp["vhid"]), int(carp["advbase"]),
                           int(carp["advskew"]))
            cur.carp[st.vhid] = st
    return out


def interface_of(interfaces: dict[str, Interface], address: str) -> Interface | None:
    """The interface that holds ``address`` as a plain (non-CARP) address."""
    for iface in interfaces.values():
        if any(a == address and v is None for a, v in iface.inet):
            return iface
    return None


def carp_masters(iface: Interface, vips: dict[int, str]) -> list[str]:
    """VIP addresses (looked up by vhid in ``vips``) this interface holds as MASTER.

    A vhid counts only while the interface is UP: a downed NIC keeps its
    last state line on some releases but holds nothing.
    """
    if not iface.up:
        return []
    return [vips[vhid] for vhid, st in sorted(iface.carp.items())
            if st.state == "MASTER" and vhid in vips]


@dataclass(frozen=True)
class MachineStatus:
    name: str
    state: str  # running | poweroff | not_created | saved | aborted | shutoff | ...
    provider: str | None


class VagrantOutputError(RuntimeError):
    """Vagrant reported an error in its machine-readable output."""


def _unescape(data: str) -> str:
    return data.replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")


def parse_machine_status(text: str) -> dict[str, MachineStatus]:
    """``vagrant status --machine-readable`` -> machine name -> its state and provider.

    Lines are ``timestamp,target,type,data...``; an ``error-exit`` line raises
    ``VagrantOutputError`` with Vagrant's message. libvirt's ``shutoff`` is
    reported as ``poweroff`` as python-vagrant does.
    """
    info: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split(",", 3)
        if len(parts) < 4:
            continue
        _, target, kind, data = parts
        if kind == "error-exit":
            raise VagrantOutputError(_unescape(data.split(",", 1)[-1]).strip())
        if target and kind in ("state", "provider-name"):
            info.setdefault(target, {})[kind] = _unescape(data)
    out = {}
    for name, kv in info.items():
        state = kv.get("state", "unknown")
        if kv.get("provider-name") == "libvirt":
            state = {"shutoff": "poweroff", "paused": "saved"}.get(state, state)
        out[name] = MachineStatus(name, state, kv.get("provider-name"))
    return out


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """``vagrant ssh-config`` -> Host name -> {option: value}; quotes around values dropped."""
    hosts: dict[str, dict[str, str]] = {}
    cur: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip().strip('"')
        if key == "Host":
            cur = hosts.setdefault(value, {})
        elif cur is not None:
            cur.setdefault(key, value)  # ssh: the first value of an option wins
    return hosts
