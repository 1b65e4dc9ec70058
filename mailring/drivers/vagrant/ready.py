"""Wait until a Vagrant lab is ready: each node's daemons run, every VIP is where the model says.

Polled against a deadline (VMs boot in tens of seconds, first provisioning in
minutes); on timeout the error says what was last seen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mailring.cluster import TransportError
from mailring.drivers.vagrant import ops

if TYPE_CHECKING:
    from mailring.drivers.vagrant.cluster import VagrantCluster

POLL_S = 2.0


def not_ready(cluster: VagrantCluster, nodes: list[str], failed: set[str]) -> str:
    """What is not ready yet, as one line; "" when everything is."""
    for node in nodes:
        for script in ops.READY_SCRIPTS[cluster.topology.nodes[node].role]:
            if not cluster.run(node, ops.status_argv(script), timeout=30).ok:
                return f"{node}: {script} is not running"
    st = cluster.status()
    expected = cluster.topology.expected_owners(failed)
    wrong = [f"{vip} held by {st.holders.get(vip) or 'nobody'} (expected {owner})"
             for vip, owner in expected.items()
             if st.holders.get(vip, []) != ([owner] if owner else [])]
    return "VIPs not converged: " + ", ".join(wrong) if wrong else ""


def wait_ready(cluster: VagrantCluster, nodes: list[str], failed: set[str],
               deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    last = "nothing checked yet"
    while time.monotonic() < end:
        try:
            last = not_ready(cluster, nodes, failed)
        except TransportError as exc:
            last = str(exc)
        if not last:
            return
        time.sleep(POLL_S)
    raise TimeoutError(f"vagrant lab {cluster.lab} not ready after {deadline_s:.0f} s; "
                       f"last seen: {last}")
