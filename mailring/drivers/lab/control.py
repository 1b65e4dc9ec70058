"""Talk to a lab node over its control sockets: its init's (one JSON line each way) and its
HAProxy's runtime API (one command, the answer until HAProxy closes)."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailring.cluster import TransportError


def call(control: Path, op: str, service: str | None = None, timeout: float = 15.0) -> dict:
    """Send one request to the node's init; raise TransportError if it cannot be reached."""
    req = {"op": op} if service is None else {"op": op, "service": service}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(control))
            s.sendall((json.dumps(req) + "\n").encode())
            with s.makefile("r") as f:
                line = f.readline()
    except OSError as exc:
        raise TransportError(f"node init at {control}: {exc}") from exc
    if not line:
        raise TransportError(f"node init at {control} closed the connection")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise TransportError(f"node init at {control}: {answer.get('error')}")
    return answer["services"]


def call_each(control: Path, op: str, services: list[str]) -> None:
    """``op`` on several of the node's services at once (the init serves each request in its
    own thread): stopping keepalived takes about a second a process, and a node runs two."""
    if len(services) < 2:
        for service in services:
            call(control, op, service)
        return
    with ThreadPoolExecutor(len(services)) as pool:
        list(pool.map(lambda service: call(control, op, service), services))  # the first error raises


def answers(control: Path) -> bool:
    """The control socket accepts requests (one left from before a crash does not)."""
    try:
        call(control, "status", timeout=1)
        return True
    except TransportError:
        return False


def haproxy(path: str, command: str, what: str, timeout: float) -> str:
    """One runtime API command to the HAProxy whose socket is ``path``; its answer. A socket
    that cannot be reached raises TransportError naming ``what``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):  # HAProxy closes after one command's answer
                chunks.append(chunk)
    except OSError as exc:
        raise TransportError(f"{what}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")
