"""Hearing the CARP (or VRRP) adverts on the cluster network from the client: probe kind
``adverts`` on the client node, read as ``Advert`` records while it runs.

``mailring.checks.takeover`` judges a takeover by them: the gap between the crashed owner's
last advert of a vhid and the new owner's first is the speaker's master-down time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailring.client import Host, Stopped, Tail, parse_stream, probe_request

if TYPE_CHECKING:
    from mailring.client import Client
    from mailring.cluster import Running


@dataclass(frozen=True)
class Advert:
    """One CARP (or VRRP) advert the client heard, at its clock ``t`` (epoch s). ``prio`` is
    byte 2 of the header: VRRP's priority, CARP's advskew."""

    t: float
    src: str
    vhid: int
    version: int
    prio: int


def parse_adverts(node: str, stdout: str, stderr: str = "", rc: int | None = 0,
                  partial: bool = False) -> list[Advert]:
    """The adverts an advert watch heard (``parse_stream``)."""
    return [a for a in advert_lines(node, stdout, stderr, rc, partial) if a is not None]


def advert_lines(node: str, stdout: str, stderr: str = "", rc: int | None = 0,
                 partial: bool = False) -> list[Advert | None]:
    """An advert watch's lines as records: None for its "listening" line, else an Advert."""
    def record(obj: dict[str, Any]) -> Advert | None:
        if obj.get("listening"):
            return None
        return Advert(t=float(obj["t"]), src=str(obj["src"]), vhid=int(obj["vhid"]),
                      version=int(obj["version"]), prio=int(obj["prio"]))

    return parse_stream(node, "adverts", record, stdout, stderr, rc, partial)


class Adverts(Stopped):
    """A running advert watch on the client (probe kind ``adverts``); ``stop()`` returns them."""

    def __init__(self, running: Running, node: str) -> None:
        self.running, self.node = running, node
        self.heard: list[Advert] | None = None
        self._tail = Tail(lambda text: advert_lines(node, text, partial=True))

    def listening(self) -> bool:
        """Whether the watch has joined the adverts' group (no advert is missed after that)."""
        return self.heard is not None or None in self._tail.update(self.running.peek())

    def so_far(self) -> list[Advert]:
        if self.heard is not None:
            return self.heard
        return [a for a in self._tail.update(self.running.peek()) if a is not None]

    def stop(self) -> list[Advert]:
        """Close the watch's stdin, wait for it and parse its lines (idempotent)."""
        if self.heard is None:
            res = self.running.stop(timeout=15)
            self.heard = parse_adverts(self.node, res.stdout, res.stderr, res.rc)
        return self.heard


def watch_adverts(client: Client, sources: list[Host], max_seconds: float = 600) -> Adverts:
    """Start hearing the CARP adverts ``sources`` send on the cluster network (a raw socket
    on the client node, joined to the adverts' group on its cluster address)."""
    cluster = client.cluster
    req = {"kind": "adverts", "local": str(cluster.topology.client.address),
           "sources": [str(s) for s in sources], "max_seconds": max_seconds}
    return Adverts(cluster.start(client.node, cluster.probe_argv() + [probe_request(req)]), client.node)
