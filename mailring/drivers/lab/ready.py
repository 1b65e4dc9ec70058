"""Wait until a lab is ready: every daemon running, VIPs where the model says.

Readiness is a condition polled with tenacity against a deadline, never a
sleep; on timeout the error says what was last seen. A daemon that exited
fails at once, naming the node, the daemon and the last lines of its log.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from mailring.checks.convergence import describe, differences
from mailring.client import Client, probe_request
from mailring.cluster import TransportError
from mailring.polling.sweep import sweep

if TYPE_CHECKING:
    from mailring.cluster import Cluster

    class LabCluster(Cluster):
        """What readiness needs of the lab driver (typing only, so ready.py and cluster.py,
        which calls it, import each other in one direction)."""

        def service_states(self, node: str) -> dict: ...

POLL_S = 0.05


class NotReady(Exception):
    pass


class DaemonFailed(RuntimeError):
    pass


def _daemons(cluster: LabCluster, node: str) -> dict:
    """NotReady while the node's init does not answer, DaemonFailed when a daemon exited; a
    node whose every started daemon runs is told ``ready`` (bring-up progress). Returns the
    init's service states."""
    try:
        services = cluster.service_states(node)
    except TransportError as exc:
        raise NotReady(f"{node}: init not answering ({exc})") from None
    for name, st in services.items():
        if st["exited"] and not st["stopped"]:
            tail = cluster.log_text(node, name).strip().splitlines()[-6:]
            raise DaemonFailed(f"{node}: {name} exited with {st['exited']} at start; last log "
                               f"lines: " + " | ".join(tail))
    running = sorted(name for name, st in services.items() if st["running"])
    if running:  # held ones (the backup ucarps at first) start later
        cluster.up_step(node, "ready", ", ".join(running))
    return services


def _vips(cluster: LabCluster, failed: set[str] | None = None) -> None:
    """VIP holders as the model predicts for ``failed`` (default: the nodes the lab's recorded
    faults take out of CARP)."""
    status = cluster.status()
    failed = cluster.carp_failed(status) if failed is None else failed
    cluster.up_carp(status, failed)
    diff = differences(cluster.topology, status, failed)
    if diff:
        raise NotReady(f"VIPs not converged: {describe(diff)}")


def wait_owners(cluster: LabCluster, deadline_s: float) -> None:
    """Block until every VIP is held by its owner (the first election at bring-up)."""

    def check() -> None:
        for node in cluster.topology.nodes:
            _daemons(cluster, node)
        _vips(cluster, failed=set())  # every VIP with its owner

    _poll(check, deadline_s, f"lab {cluster.lab}: first CARP election")


def wait_services(cluster: LabCluster, node: str, deadline_s: float = 20.0) -> None:
    """Block until a node's own daemons answer on its address and its HAProxy sees them UP.

    The lab's counterpart of FreeBSD's net.inet.carp.allow=0 until services are
    ready: CARP starts only after this, so a booting owner never takes its VIPs
    back before it can serve them.
    """
    topo = cluster.topology
    me = topo.nodes[node]
    plain = [s for s in topo.services.values() if s.daemon]
    targets = [{"name": s.name, "host": str(me.address), "port": s.port, "protocol": s.protocol,
                "timeout": 1.0} for s in plain]
    req = probe_request({"kind": "sweep", "targets": targets})

    def check() -> None:
        haproxy = _daemons(cluster, node).get("haproxy", {"running": True})
        if not haproxy["running"]:  # a probe process per poll would only slow the daemons' start
            raise NotReady(f"{node}: daemons not all listening yet (the init starts HAProxy once they are)")
        res = cluster.run(node, cluster.probe_argv() + [req], timeout=10)
        answer = json.loads(res.stdout or "{}")
        down = [n for n, r in answer.get("results", {}).items() if not r.get("ok")]
        if not answer.get("results") or down:
            raise NotReady(f"{node}: not answering yet: {down or res.stderr.strip()}")
        try:  # the init starts HAProxy once the daemons listen: its socket may not be there yet
            state = cluster.haproxy_command(node, "show servers state")
        except TransportError as exc:
            raise NotReady(f"{node}: HAProxy not answering yet ({exc})") from None
        local = [line.split() for line in state.splitlines()
                 if len(line.split()) > 5 and line.split()[3] == node]
        if not local or any(f[5] != "2" for f in local):  # srv_op_state 2 = RUNNING
            raise NotReady(f"{node}: HAProxy does not see all its local servers UP yet")

    _poll(check, deadline_s, f"{node}: services before CARP")


def _poll(check, deadline_s: float, what: str) -> None:
    last = ["nothing checked yet"]
    try:
        for attempt in Retrying(stop=stop_after_delay(deadline_s), wait=wait_fixed(POLL_S),
                                retry=retry_if_exception_type(NotReady), reraise=False):
            with attempt:
                try:
                    check()
                except NotReady as exc:
                    last[0] = str(exc)
                    raise
    except RetryError:
        raise TimeoutError(f"{what} after {deadline_s:.0f} s; last seen: {last[0]}") from None


def wait_ready(cluster: LabCluster, deadline_s: float = 30.0, nodes: list[str] | None = None) -> None:
    """Block until daemons run and VIPs match the model, or raise naming what was last seen."""
    nodes = nodes or [n for n in cluster.topology.nodes if n not in cluster.faults()]

    client = Client(cluster)
    failed = cluster.carp_failed()

    def check() -> None:
        for node in nodes:
            _daemons(cluster, node)
        _vips(cluster)
        problems = sweep(client, cluster.topology, cluster.topology.expected_owners(failed))
        if problems:
            raise NotReady(f"{len(problems)} VIP services not answering from their owner: "
                           + "; ".join(problems[:4]))

    _poll(check, deadline_s, f"lab {cluster.lab} not ready")
