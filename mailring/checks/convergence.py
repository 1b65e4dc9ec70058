"""Does the cluster match the model? The VIP holders the model expects, and how long
CARP may take to get there (``mailring.polling.convergence`` waits for it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.speakers import SPEAKERS, Speaker

if TYPE_CHECKING:
    from mailring.cluster import Status
    from mailring.topology import Topology

MARGIN_S = 1.0  # status polling and scheduling on a busy machine


def deadline_s(topo: Topology, failed: set[str] | frozenset[str] = frozenset(),
               speaker: Speaker = SPEAKERS["ucarp"]) -> float:
    """3 x advbase + the largest new owner's skew/256, plus what the CARP speaker adds (ucarp,
    the default and the most lenient: its timer tick, libpcap's delay and two advbase per backup
    rank; keepalived and kernel CARP: nothing), plus MARGIN_S."""
    worst = max(topo.failover_bound_s(v, failed)
                + speaker.deadline_extra_s(topo.advbase, topo.takeover_rank(v, failed))
                for v in topo.vips)
    return worst + MARGIN_S


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

