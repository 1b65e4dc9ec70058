"""The gratuitous ARP a booting owner sends before its CARP speaker starts (no root needed)."""

from __future__ import annotations

import pytest

from mailring.drivers.lab.garp import frame
from mailring.drivers.lab.netns import mac_of


def test_a_gratuitous_arp_names_the_address_as_sender_and_target_from_the_nodes_mac() -> None:
    mac = bytes.fromhex(mac_of("192.168.56.11").replace(":", ""))
    f = frame(mac, "192.168.56.101")
    assert len(f) == 42  # Ethernet header + ARP for IPv4 over Ethernet
    assert f[:6] == b"\xff" * 6 and f[6:12] == mac and f[12:14] == b"\x08\x06"  # broadcast ARP
    assert f[14:22] == bytes.fromhex("0001080006040001")  # Ethernet, IPv4, request
    assert f[22:28] == mac and f[28:32] == bytes([192, 168, 56, 101])  # sender: the VIP here
    assert f[32:38] == bytes(6) and f[38:42] == f[28:32]  # target: the same address


def test_a_frame_needs_a_whole_mac_and_an_address() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        frame(b"\x02\x6d", "192.168.56.101")
    with pytest.raises(OSError):
        frame(bytes(6), "mail01")
