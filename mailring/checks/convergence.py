"""Does the cluster match the model? The VIP holders the model expects, and how long
CARP may take to get there (``mailring.polling.convergence`` waits for it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailring.cluster import Status
    from mailring.topology import Topology

# ucarp checks its timers on a one-second tick and reads adverts through libpcap
# with up to a second of delay; kernel CARP needs neither. Margin in advbase units.
CARP_MARGIN_ADVBASE = 2.0
MARGIN_S = 1.0


def deadline_s(topo: Topology, failed: set[str] | frozenset[str] = frozenset()) -> float:
    """3 x advbase + the largest new owner's skew/256, plus the margin; a VIP taken over
    by a deeper backup (the lab's ucarp waits two advbase more per rank) gets that too."""
    worst = max(topo.failover_bound_s(v, failed) + 2 * max(topo.takeover_rank(v, failed), 0) * topo.advbase
                for v in topo.vips)
    return worst + CARP_MARGIN_ADVBASE * topo.advbase + MARGIN_S


def differences(topo: Topology, status: Status, failed: set[str]) -> dict[str, tuple[str | None, list[str]]]:
    """VIP -> (expected owner, actual holders) for every VIP that differs from the model."""
    out = {}
    for vip, owner in topo.expected_owners(failed).items():
        held = status.holders.get(vip, [])
        if held != ([owner] if owner else []):
            out[vip] = (owner, held)
    return out


def describe(diff: dict[str, tuple[str | None, list[str]]]) -> str:
    return "; ".join(f"VIP {vip}: expected owner {exp or 'nobody'}, held by "
                     f"{', '.join(held) or 'nobody'}" for vip, (exp, held) in sorted(diff.items()))

