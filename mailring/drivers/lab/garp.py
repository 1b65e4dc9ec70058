"""Gratuitous ARP from a lab node: ``python3 -m mailring.drivers.lab.garp <ifname> <address>...``.

Run inside a node's namespace (``ip netns exec``), it sends one gratuitous ARP request per
address (sender and target both the address, from the interface's own MAC, to broadcast),
so every neighbour that knows the address points it at this node at once (the lab's client
takes them: ``netns.take_gratuitous_arp``). Standard library only, so it starts fast on
whatever interpreter runs the driver (``netns.stage_vips`` runs it).
"""

from __future__ import annotations

import socket
import sys

ETH_P_ARP = 0x0806


def frame(mac: bytes, address: str) -> bytes:
    """The Ethernet frame of a gratuitous ARP request for ``address`` from ``mac``."""
    if len(mac) != 6:
        raise ValueError(f"a MAC has 6 bytes, not {len(mac)}")
    ip = socket.inet_aton(address)
    arp = bytes.fromhex("0001" "0800" "06" "04" "0001") + mac + ip + bytes(6) + ip
    return b"\xff" * 6 + mac + ETH_P_ARP.to_bytes(2, "big") + arp


def send(ifname: str, addresses: list[str]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
        s.bind((ifname, ETH_P_ARP))
        mac = s.getsockname()[4]
        for address in addresses:
            s.send(frame(mac, address))


if __name__ == "__main__":
    send(sys.argv[1], sys.argv[2:])
