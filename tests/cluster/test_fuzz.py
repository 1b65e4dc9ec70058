"""mailring fuzz on the session's cluster, with a small budget: a random fault sequence from the
whole registry, every step checked against the model (owners in time, promised services
answering from the client, one holder per VIP, the load promise), the mail written through it
all delivered, and every fault healed at the end."""

from __future__ import annotations

import pytest

from mailring.fuzz.run import Options, fuzz
from mailring.runs import RunFolder
from mailring.scenario.progress import Progress

pytestmark = [pytest.mark.destructive, pytest.mark.long]

STEPS = 4


def test_a_random_fault_sequence_holds_every_invariant_and_ends_healed(cluster, topology, tmp_path):
    folder = RunFolder.create("fuzz", root=tmp_path, driver=cluster.NAME, lab=cluster.lab)
    verdict = fuzz(cluster, folder, Options(steps=STEPS, seed=17, budget_s=300), Progress(plain=True))
    rows = [r for r in verdict["results"] if r["check"] == "step"]
    assert verdict["valid"] is True, [r["message"] for r in verdict["results"] if r["valid"] is not True]
    assert 1 <= len(rows) <= STEPS and all(r["figures"]["served_targets"] > 0 for r in rows)
    assert "every invariant held" in verdict["results"][-1]["message"]
    status = cluster.status()
    assert status.faults == {} and all(n.state == "up" for n in status.nodes.values())
    assert status.holders == {v: [o] for v, o in topology.expected_owners().items()}
