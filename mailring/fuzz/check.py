"""One fuzz step's invariants, checked against the running cluster (polling: I/O).

After every step, within bounds derived from the topology:

- ``owners``: the VIP holders match ``Topology.expected_owners(failed)`` within
  the convergence deadline (``checks.convergence.deadline_s``: CARP's takeover
  bound, two advbase more per backup rank, and the documented margin), counted
  from when the step's action returned;
- ``one_holder``: no holder sample since the last check shows a VIP held by two
  nodes, but for the hand-overs the model foresees (``checks.holders``, strict);
- ``max_load``: no live node holds more than ceil(VIPs / mail nodes in CARP);
- ``served``: every service the model says a VIP serves answers on it from
  client01 within ``serve_deadline_s`` (HAProxy's checks: fall or rise times
  interval plus check timeout, and the client-side margin of
  ``checks.timelines.margin_s``).

``check_step`` returns a ``StepVerdict`` with the figures, observed and expected;
the first broken invariant makes it fail (``ok`` False, ``check`` names it).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailring.checks.convergence import deadline_s, describe, differences
from mailring.checks.holders import Handover, double_holders, held_as
from mailring.checks.timelines import margin_s
from mailring.polling.holders import HolderWatch

if TYPE_CHECKING:
    from mailring.client import Client
    from mailring.fuzz.moves import FaultState, Move
    from mailring.topology import Topology

SWEEP_TIMEOUT_S = 2.0


@dataclass
class StepVerdict:
    sequence: int  # which generated sequence (Hypothesis example), 1-based
    index: int  # the step's place in its sequence, 1-based
    move: Move
    ok: bool = True
    check: str = ""  # the invariant that failed
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    t: float = 0.0
    duration_s: float = 0.0

    def fail(self, check: str, message: str, **figures: Any) -> StepVerdict:
        self.ok, self.check, self.message = False, check, message
        self.figures.update(figures)
        return self


def serve_deadline_s(topo: Topology) -> float:
    """How long after the owners converged a promised service may still fail: HAProxy marks a
    server DOWN after ``fall`` checks that each may wait the check timeout (a hung daemon), UP
    after ``rise`` checks, plus the client-side margin (ARP, probe timeout, scheduling)."""
    h = topo.haproxy
    return max(h.all_down_within_s(hung=True), h.up_within_s()) + margin_s(topo)


def wait_owners(watch: HolderWatch, since: float, owners: dict[str, str | None],
                until: float) -> float | None:
    """The first sample from ``since`` on that shows the model's owners, waiting until ``until``."""
    while True:
        reached = watch.reached(since, owners)
        if reached is not None or time.time() >= until:
            return reached
        time.sleep(watch.poll_s)


def heaviest(holders: dict[str, tuple[str, ...]]) -> tuple[str, int]:
    """The node holding the most VIPs in a sample, and how many."""
    counts = Counter(n for held in holders.values() for n in held)
    return counts.most_common(1)[0] if counts else ("nobody", 0)


def sweep_targets(topo: Topology, served: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [{"name": f"{s}@{vip}", "host": vip, "port": topo.services[s].port,
             "protocol": topo.services[s].protocol, "tls": topo.services[s].tls, "timeout": SWEEP_TIMEOUT_S}
            for vip, services in served.items() for s in services]


def unserved(client: Client, targets: list[dict[str, Any]]) -> list[str]:
    """'<service>@<VIP>: <error>' for each target that did not answer ([] when all did)."""
    if not targets:
        return []
    res = client.request({"kind": "sweep", "targets": targets})
    return sorted(f"{name}: {r.get('error')}" for name, r in res["results"].items() if not r["ok"])


def check_step(verdict: StepVerdict, state: FaultState, watch: HolderWatch, client: Client,
               done: float, allowed: list[Handover], since: float) -> StepVerdict:
    """Check the invariants after ``verdict.move`` (applied at ``verdict.t``, returned at ``done``);
    doubles are judged over the samples from ``since`` (the previous check's end) on."""
    topo = state.topo
    failed, owners = state.failed(), state.owners()
    bound = deadline_s(topo, failed)
    verdict.figures.update(failed=sorted(failed), converge_bound_ms=round(bound * 1000))
    reached = wait_owners(watch, verdict.t, owners, done + bound)
    if reached is None:
        latest = watch.latest.holders if watch.latest is not None else {}
        diff = differences(topo, watch.latest, failed) if watch.latest is not None else {}
        return verdict.fail("owners", f"VIP owners never matched the model within {bound:.1f} s of the "
                            f"step; last seen: {describe(diff) or 'as expected'}",
                            expected={v: o for v, o in sorted(owners.items())},
                            observed={v: list(latest.get(v, [])) for v in sorted(owners)})
    verdict.figures["converged_ms"] = round((reached - done) * 1000)
    sample = next(s for s in watch.since(reached) if held_as(s, owners))
    node, held = heaviest(sample.holders)
    limit = state.load_bound()
    verdict.figures.update(max_load=held, max_load_node=node, load_bound=limit,
                           live_mail_nodes=len(state.in_carp()))
    if held > limit:
        live = len(state.in_carp())
        return verdict.fail("max_load", f"{node} holds {held} VIPs with {live} mail nodes in CARP; the "
                            f"ring promises at most ceil({len(topo.vips)}/{live}) = {limit}",
                            observed=held, expected=limit)
    served = state.served()
    targets = sweep_targets(topo, served)
    serve_by = time.time() + serve_deadline_s(topo)
    problems = unserved(client, targets)
    while problems and time.time() < serve_by:
        time.sleep(0.2)
        problems = unserved(client, targets)
    verdict.figures.update(served_targets=len(targets), serve_bound_ms=round(serve_deadline_s(topo) * 1000))
    if problems:
        return verdict.fail("served", f"{len(problems)} of {len(targets)} promised services did not answer "
                            f"from {client.node} within {serve_deadline_s(topo):.1f} s: "
                            + "; ".join(problems[:4]), unserved=problems[:10])
    doubles = double_holders(watch.since(since), since, allowed)
    if doubles:
        return verdict.fail("one_holder", "split brain: " + "; ".join(doubles)
                            + watch.carp_logs(allowed, since))
    return verdict

