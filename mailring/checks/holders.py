"""VIP holders sampled continuously through a fault: split brain shows as one sample with two holders.

``converge()`` waits until every VIP has exactly the expected holder, so a
check after it can never see a double holder that came and went. ``HolderWatch``
reads ``cluster.status()`` in a thread, over and over, while a test isolates
and heals a node (with its own clock, timestamped), and ``double_holders``
judges the samples: any VIP held by two reachable nodes in any sample is named,
with when and how often.

One exception, named by the test: a ``Handover``. When a VIP's owner comes
back and takes its VIP over by preemption, the old holder lets go when it hears
the owner's first advert, and the samples (one node read after the other) may
catch both for that moment. Only the two nodes of that handover, only that VIP,
only within its window after the event, are forgiven; any other double fails.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailring.checks import CheckError

if TYPE_CHECKING:
    from mailring.cluster import Cluster
    from mailring.topology import Topology


@dataclass(frozen=True)
class Sample:
    t: float  # epoch seconds when the read began
    holders: dict[str, tuple[str, ...]]  # VIP -> reachable nodes holding it as CARP master


@dataclass(frozen=True)
class Handover:
    """VIP ``vip`` passes between ``nodes`` at ``t``: both may hold it until ``t + window_s``."""

    t: float
    vip: str
    nodes: frozenset[str]
    window_s: float

    def forgives(self, t: float, vip: str, held: tuple[str, ...]) -> bool:
        return vip == self.vip and self.t <= t <= self.t + self.window_s and set(held) <= self.nodes


def handovers(topo: Topology, t: float, failed_before: set[str], failed_after: set[str]) -> list[Handover]:
    """The VIPs whose expected owner changes at ``t`` (a heal or boot), each forgiven for
    one takeover: the new owner hears an advert (advbase), takes over, and the old holder
    hears its advert in turn (ucarp reads adverts up to an advbase late) - 3 x advbase."""
    before, after = topo.expected_owners(failed_before), topo.expected_owners(failed_after)
    return [Handover(t, vip, frozenset(n for n in (before[vip], after[vip]) if n), 3 * topo.advbase)
            for vip in before if before[vip] != after[vip]]


def double_holders(samples: list[Sample], since: float | None = None,
                   allowed: tuple[Handover, ...] | list[Handover] = ()) -> list[str]:
    """One line per VIP that two nodes held at once in some sample, but for ``allowed``
    handovers ([] when no other double was seen)."""
    start = since if since is not None else (samples[0].t if samples else 0.0)
    seen: dict[str, list[Sample]] = {}
    for s in samples:
        for vip, held in s.holders.items():
            if len(held) > 1 and not any(h.forgives(s.t, vip, held) for h in allowed):
                seen.setdefault(vip, []).append(s)
    out = []
    for vip, hits in sorted(seen.items()):
        who = sorted({n for h in hits for n in h.holders[vip]})
        out.append(f"VIP {vip} held by {' and '.join(who)} at once in {len(hits)} of {len(samples)} "
                   f"samples, from {hits[0].t - start:+.2f} s to {hits[-1].t - start:+.2f} s")
    return out


class HolderWatch:
    """Reads the VIP holders in a thread until stopped; ``samples`` grows meanwhile.

    Use as a context manager around the fault; ``check()`` then raises CheckError
    naming every double holder, or when fewer than ``minimum`` samples were read.
    """

    def __init__(self, cluster: Cluster, poll_s: float = 0.05) -> None:
        self.cluster, self.poll_s = cluster, poll_s
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="holder-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            try:
                status = self.cluster.status()
            except Exception as exc:  # noqa: BLE001 - a failed read is reported, not fatal
                self.errors.append(f"+{t - self.started:.2f} s: {exc}")
            else:
                self.samples.append(Sample(t, {v: tuple(h) for v, h in status.holders.items()}))
            self._stop.wait(self.poll_s)

    def __enter__(self) -> HolderWatch:
        self.started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def check(self, allowed: list[Handover] | tuple[Handover, ...] = (), minimum: int = 20) -> list[str]:
        """Raise unless at least ``minimum`` samples were read and none had two holders of one
        VIP (but for ``allowed`` handovers); return the forgiven handover doubles, described."""
        if len(self.samples) < minimum:
            raise CheckError(f"only {len(self.samples)} holder samples read (wanted {minimum}); "
                             f"errors: {self.errors[-3:]}")
        doubles = double_holders(self.samples, self.started, allowed)
        if doubles:
            raise CheckError("split brain: " + "; ".join(doubles))
        return double_holders(self.samples, self.started)
