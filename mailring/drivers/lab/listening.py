"""Whether a TCP connection to an address and port would be taken by a listening socket, asked
of the kernel's sock_diag in this network namespace.

A node's init asks this until the daemons HAProxy checks accept connections on the node's
address, then starts HAProxy. Each target is one exact sock_diag request: the kernel looks
the socket up in its listening hash as it would for an arriving SYN (``inet_lookup``:
a socket bound to that address or to the wildcard, IPv6 dual-stack ones too), so an answer
costs the same whatever else is open on the host. Earlier versions dumped the listening
table, and a dump walks the whole host's table: in a 50-ring, whose HAProxies bind every
VIP on every port (about 40,000 listening sockets), the inits' polls took 4 % of all the
CPU of bring-up (``tcp_diag_dump``); reading /proc/net/tcp before that walked every socket.
Standard library only: the init runs on the host's python3 (pyroute2's import alone takes
longer than a whole wait).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 2
TCP_LISTEN = 10
NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid: sport, dport
# (big-endian), src[4], dst[4], if, cookie[2]
REQ = struct.Struct("=BBBBI2s2s16s16sIII")
NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: any socket
STATE_AT = 1  # in inet_diag_msg: family, state, ...

Target = tuple[str, int]  # an IPv4 address and a TCP port


def accepting(targets: Iterable[Target]) -> set[Target]:
    """The ``targets`` whose connections a listening socket of this namespace would take."""
    found: set[Target] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        for seq, (address, port) in enumerate(sorted(set(targets)), start=1):
            # the socket a SYN from nowhere (0.0.0.0:0) to address:port would reach
            body = REQ.pack(socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN,
                            port.to_bytes(2, "big"), bytes(2), socket.inet_aton(address) + bytes(12),
                            bytes(16), 0, NO_COOKIE, NO_COOKIE)
            sock.send(NLMSGHDR.pack(NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST,
                                    seq, 0) + body)
            if _listening(sock.recv(65536)):
                found.add((address, port))
    return found


def _listening(data: bytes) -> bool:
    """The kernel's answer to one exact request: a socket in LISTEN, or ENOENT for none."""
    if len(data) < NLMSGHDR.size:
        raise OSError(f"sock_diag: a reply of {len(data)} bytes")
    _, kind, _, _, _ = NLMSGHDR.unpack_from(data)
    if kind == NLMSG_ERROR:
        err = -struct.unpack_from("=i", data, NLMSGHDR.size)[0]
        if err == errno.ENOENT:
            return False
        raise OSError(err, f"sock_diag: {os.strerror(err)}")
    if kind != SOCK_DIAG_BY_FAMILY:
        raise OSError(f"sock_diag: a reply of type {kind}")
    return data[NLMSGHDR.size + STATE_AT] == TCP_LISTEN
