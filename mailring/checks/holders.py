"""VIP holders sampled continuously through faults: the one sampler, and the strict judge of it.

``converge()`` waits until every VIP has exactly the expected holder, so a
check after it can never see a double holder that came and went.
``mailring.polling.holders.HolderWatch`` reads ``cluster.status()`` in a
thread, over and over (with its own clock, timestamped), while a test, a
scenario run or the fuzzer faults the cluster; it hands each sample to an
optional recorder (the run folder's ownership.jsonl) and answers "who holds
what now" and "since when" for the runners' waits. ``double_holders`` judges
the samples: any VIP held by two
reachable nodes in any sample is named, with when and how often.

One exception, derived from the model: a ``Handover``. When a VIP's expected
owner changes (a node comes back and takes its VIP over by preemption, or a
node leaves and a backup takes over), the old holder lets go when it hears the
new one's first advert, and the samples (one node read after the other) may
catch both for that moment. Only the two nodes of that handover, only that
VIP, only within its window after the event, are forgiven; any other double
fails. ``handovers`` lists them for one fault step. The window also reaches a
grace past the first sample that shows the new holder with the VIP: the
takeover as it happened, since the new holder's CARP may start late (a VM's
systemd restarts the ucarp that exited with its link some seconds after the
link is back). How long the two may overlap is what is judged, not when.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailring.topology import Topology


@dataclass(frozen=True)
class Sample:
    t: float  # epoch seconds when the read began
    holders: dict[str, tuple[str, ...]]  # VIP -> reachable nodes holding it as CARP master


@dataclass(frozen=True)
class Handover:
    """VIP ``vip`` passes between ``nodes`` at ``t``: both may hold it until ``t + window_s``
    and, once ``to`` (the new holder) is seen with it, for ``grace_s`` after that (``as_seen``)."""

    t: float
    vip: str
    nodes: frozenset[str]
    window_s: float
    to: str | None = None
    grace_s: float = 0.0
    seen_at: float | None = None  # when ``to`` was first seen with the VIP (set by ``as_seen``)

    def forgives(self, t: float, vip: str, held: tuple[str, ...]) -> bool:
        return vip == self.vip and self.t <= t <= self.t + self.window_s and set(held) <= self.nodes

    def taken(self, samples: Sequence[Sample], until: float = float("inf")) -> float | None:
        """When the new holder was first seen with the VIP, from ``t`` on and before ``until``
        (the VIP's next handover); None: never."""
        if self.to is None:
            return None
        return next((s.t for s in samples
                     if self.t <= s.t < until and self.to in s.holders.get(self.vip, ())), None)

    def as_seen(self, samples: Sequence[Sample], until: float = float("inf")) -> Handover:
        """This handover with its window reaching ``grace_s`` past the takeover the samples show."""
        taken = self.taken(samples, until) if self.grace_s else None
        if taken is None:
            return self
        return replace(self, window_s=max(self.window_s, taken + self.grace_s - self.t), seen_at=taken)


def as_seen(allowed: Sequence[Handover], samples: Sequence[Sample]) -> list[Handover]:
    """Every handover as the samples show it, each looking for its takeover only until the
    same VIP's next handover (a later step's double is that step's own)."""
    return [h.as_seen(samples, min((o.t for o in allowed if o.vip == h.vip and o.t > h.t),
                                   default=float("inf"))) for h in allowed]


def takeover_window_s(advbase: float) -> float:
    """How long two nodes may both hold a VIP that changes hands: the new owner hears an advert
    (advbase), takes over, and the old holder hears its advert in turn (ucarp reads adverts up
    to an advbase late) - 3 x advbase."""
    return 3 * advbase


def owner_changes(before: Mapping[str, str | None], after: Mapping[str, str | None], t: float,
                  window_s: float, grace_s: float = 0.0) -> list[Handover]:
    """A Handover for every VIP whose expected owner differs between two owner maps."""
    return [Handover(t, vip, frozenset(n for n in (before.get(vip), after.get(vip)) if n), window_s,
                     after[vip], grace_s)
            for vip in after if before.get(vip) != after[vip]]


def handovers(topo: Topology, t: float, failed_before: set[str], failed_after: set[str],
              done: float | None = None, late_s: float = 0.0) -> list[Handover]:
    """The VIPs whose expected owner changes with a step that began at ``t`` (and returned at
    ``done``: a boot starts CARP only at its end), each forgiven for one takeover after it, or
    after the new holder is seen with it, however late (``late_s``: the driver's
    ``Cluster.GUEST_LATE_S``, how late its nodes may hear an advert)."""
    takeover = takeover_window_s(topo.advbase)
    window = (max(done - t, 0.0) if done is not None else 0.0) + takeover
    return owner_changes(topo.expected_owners(failed_before), topo.expected_owners(failed_after), t, window,
                         takeover + late_s)


def double_holders(samples: list[Sample], since: float | None = None,
                   allowed: tuple[Handover, ...] | list[Handover] = ()) -> list[str]:
    """One line per VIP that two nodes held at once in some sample, but for ``allowed``
    handovers as the samples show them (``as_seen``), each with that VIP's forgiven windows
    ([] when no other double was seen)."""
    start = since if since is not None else (samples[0].t if samples else 0.0)
    allowed = as_seen(allowed, samples)
    out = []
    for vip, hits in sorted(unforgiven(samples, allowed).items()):
        who = sorted({n for h in hits for n in h.holders[vip]})
        out.append(f"VIP {vip} held by {' and '.join(who)} at once in {len(hits)} of {len(samples)} "
                   f"samples, from {hits[0].t - start:+.2f} s to {hits[-1].t - start:+.2f} s"
                   + "".join(_window(h, start) for h in allowed if h.vip == vip))
    return out


def unforgiven(samples: list[Sample], allowed: Sequence[Handover] = ()) -> dict[str, list[Sample]]:
    """VIP -> the samples in which two nodes held it and no handover of ``allowed`` (as they
    are, not stretched by ``as_seen``) forgives it."""
    seen: dict[str, list[Sample]] = {}
    for s in samples:
        for vip, held in s.holders.items():
            if len(held) > 1 and not any(h.forgives(s.t, vip, held) for h in allowed):
                seen.setdefault(vip, []).append(s)
    return seen


def _window(h: Handover, start: float) -> str:
    """What a handover of the VIP forgave, for a split-brain line: the window, and when the
    new holder was first seen with it."""
    seen = f", {h.to} first seen with it at {h.seen_at - start:+.2f} s" if h.seen_at is not None else ""
    return (f" (a handover between {' and '.join(sorted(h.nodes))} was forgiven from "
            f"{h.t - start:+.2f} s to {h.t + h.window_s - start:+.2f} s{seen})")


def held_as(sample: Sample, expected: Mapping[str, str | None]) -> bool:
    """Does the sample show exactly the expected holder (or nobody, for None) of every VIP?"""
    return all(sample.holders.get(vip, ()) == ((o,) if o else ()) for vip, o in expected.items())

