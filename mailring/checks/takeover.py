"""Judging a takeover by the adverts the client heard: the time from the crashed owner's last
advert of a vhid to the new owner's first, against CARP's bound.

A client's outage (``mailring.checks.timelines``) depends on where in the advert interval a
crash falls: a crash just before the owner's next advert is taken over up to one advbase
sooner after it, so an outage test alone lets a failover one advbase slow pass now and then.
The adverts take that chance out: a backup becomes master once it has heard no advert for
its master-down time (CARP: 3 x advbase + advskew/256) and adverts at once, so the gap
between the two owners' adverts is the speaker's master-down time itself, whatever the
crash's phase.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailring.checks.timelines import SLACK_S
from mailring.speakers import Speaker

if TYPE_CHECKING:
    from mailring.adverts import Advert
    from mailring.topology import Topology


@dataclass(frozen=True)
class Takeover:
    """One VIP's takeover as its adverts show it (times on the client's clock, epoch s)."""

    vip: str
    vhid: int
    old: str  # the node that crashed
    new: str  # the node the model sends the VIP to
    last_old: float | None  # old's last advert of the vhid before new's first
    first_new: float | None  # new's first advert of the vhid after the crash
    bound_s: float  # CARP's bound for new (3 x advbase + its advskew/256)
    late_s: float  # what the speaker may add to it
    early_s: float = SLACK_S  # how much sooner the gap may be: the client's receive jitter

    @property
    def gap_s(self) -> float | None:
        if self.last_old is None or self.first_new is None:
            return None
        return self.first_new - self.last_old

    def problem(self) -> str | None:
        """Why this takeover breaks CARP's timing, or None."""
        where = f"VIP {self.vip} (vhid {self.vhid})"
        if self.last_old is None:
            return (f"{where}: the client heard no advert from {self.old} before {self.new} took "
                    "over; the watch must listen (and hear the owner) before the crash")
        if self.first_new is None:
            return f"{where}: the client heard no advert from {self.new} after {self.old} crashed"
        gap = self.gap_s
        low, high = self.bound_s - self.early_s, self.bound_s + self.late_s + SLACK_S
        if gap is not None and not low <= gap <= high:
            return (f"{where}: {self.new} adverted {gap * 1000:.0f} ms after {self.old}'s last advert; "
                    f"CARP's bound is {self.bound_s * 1000:.0f} ms, allowed {low * 1000:.0f}.."
                    f"{high * 1000:.0f} ms")
        return None


def takeovers_of(adverts: Iterable[Advert], topo: Topology, crashed: str, vips: list[str],
                 since: float, speaker: Speaker, guest_s: float = 0.0) -> list[Takeover]:
    """A Takeover per VIP of ``vips`` (owned by ``crashed``, crashed at ``since``). ``guest_s``
    widens both sides by how late an emulated guest's timers and packets run (the driver's
    ``Cluster.GUEST_LATE_S``; the lab's 0)."""
    heard = list(adverts)
    old = addresses_of(topo, crashed)
    rows = []
    for address in vips:
        vip = topo.vip(address)
        new = topo.expected_owner(vip, {crashed})
        if new is None:
            raise ValueError(f"VIP {address}: no node is left to take it over from {crashed}")
        mine = [a for a in heard if a.vhid == vip.vhid]
        news = addresses_of(topo, new)
        first_new = min((a.t for a in mine if a.src in news and a.t >= since), default=None)
        last_old = max((a.t for a in mine if a.src in old
                        and (first_new is None or a.t < first_new)), default=None)
        rank = topo.takeover_rank(vip, {crashed})
        rows.append(Takeover(str(vip.address), vip.vhid, crashed, new, last_old, first_new,
                             topo.failover_bound_s(vip, {crashed}),
                             speaker.deadline_extra_s(topo.advbase, rank) + guest_s,
                             SLACK_S + guest_s))
    return rows


def addresses_of(topo: Topology, node: str) -> set[str]:
    """The addresses ``node``'s adverts may come from (its address and aliases on the cluster network)."""
    n = topo.node(node)
    return {str(a) for a in (n.address, *n.aliases)}


def crash_sources(topo: Topology, node: str) -> tuple[list[str], dict[int, set[str]]]:
    """What a watch must hear to judge a crash of ``node``: the addresses of the node and of
    each of its VIPs' next owners, and per vhid of its VIPs the node's own addresses (the
    adverts ``wait_heard`` waits for before the crash)."""
    owner = addresses_of(topo, node)
    mine = topo.vips_owned_by(node)
    heirs = {topo.expected_owner(str(v.address), {node}) or node for v in mine}
    sources = owner.union(*(addresses_of(topo, h) for h in heirs))
    return sorted(sources), {v.vhid: owner for v in mine}
