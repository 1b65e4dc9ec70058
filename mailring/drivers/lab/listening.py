"""The TCP ports something listens on in this network namespace, asked of the kernel's sock_diag.

A node's init polls this until its daemons listen, then starts HAProxy. It used
to read /proc/net/tcp, but every namespace's /proc/net/tcp walks the one socket
table of the whole host: with a 20-ring's HAProxy checks (about 6,800 TCP
sockets) one read took 13 ms of CPU, and each init, polling every 20 ms, spent
0.1-0.3 s of CPU waiting, half of all the CPU its bring-up used. A sock_diag
dump that asks for listening sockets only walks just the listening table
(``inet_diag_dump_icsk`` skips the established one), whatever else is open.
Standard library only: the init runs on the host's python3 (pyroute2's import
alone takes longer than a whole wait).
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed 48-byte inet_diag_sockid
REQ = struct.Struct("=BBBBI48x")
SPORT_AT = 4  # in inet_diag_msg: family, state, timer, retrans, then id.idiag_sport (big-endian)


def listening_tcp_ports() -> set[int]:
    """The local ports of every listening TCP socket, IPv4 and IPv6, in this namespace."""
    ports: set[int] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            body = REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
            sock.send(NLMSGHDR.pack(NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY,
                                    NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
            ports |= _read_dump(sock)
    return ports


def _read_dump(sock: socket.socket) -> set[int]:
    ports: set[int] = set()
    while True:
        data = sock.recv(65536)
        at = 0
        while at + NLMSGHDR.size <= len(data):
            length, kind, _, _, _ = NLMSGHDR.unpack_from(data, at)
            if length < NLMSGHDR.size or at + length > len(data):
                raise OSError(f"sock_diag: a message of {length} bytes at {at} of {len(data)}")
            if kind == NLMSG_DONE:
                return ports
            if kind == NLMSG_ERROR:
                err = -struct.unpack_from("=i", data, at + NLMSGHDR.size)[0]
                raise OSError(err, f"sock_diag: {os.strerror(err)}")
            if kind == SOCK_DIAG_BY_FAMILY:
                ports.add(struct.unpack_from("!H", data, at + NLMSGHDR.size + SPORT_AT)[0])
            at += (length + 3) & ~3  # NLMSG_ALIGN
