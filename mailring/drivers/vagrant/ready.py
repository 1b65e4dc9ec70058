"""Wait until a Vagrant lab is ready: each node's daemons run, every VIP is where the model says.

Polled with tenacity against a deadline (VMs boot in tens of seconds, first
provisioning in minutes); on timeout the error says what was last seen. It
works on the ``Cluster`` interface and a guest adapter only, so the driver
module imports this one and not the other way round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from mailring.checks.convergence import describe, differences
from mailring.checks.holders import takeover_window_s
from mailring.cluster import Cluster, TransportError

if TYPE_CHECKING:
    from mailring.drivers.vagrant.guests import Guest

POLL_S = 1.0
# the longest a clock resync may take: chronyc waitsync's 60 tries a second apart, and a restart
RESYNC_S = 90.0


class NotReady(Exception):
    pass


def node_problem(cluster: Cluster, guest: Guest, node: str) -> str:
    """What is not running on one node, or "" (a node that cannot be reached says so)."""
    role = cluster.topology.nodes[node].role
    try:
        res = cluster.run(node, guest.ready_argv(role), timeout=30)
    except TransportError as exc:
        return str(exc)
    problem = guest.not_ready(role, res.stdout, res.rc)
    return f"{node}: {problem}" if problem else ""


def not_ready(cluster: Cluster, guest: Guest, nodes: list[str], failed: set[str]) -> str:
    """What is not ready yet, as one line; "" when everything is. Nodes are asked in parallel;
    while the lab comes up, each ready node and each node with its model VIPs is told
    (``Cluster.up_step``, ``Cluster.up_carp``)."""
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        found = dict(zip(nodes, pool.map(lambda n: node_problem(cluster, guest, n), nodes), strict=True))
    for node, problem in found.items():
        if not problem:
            cluster.up_step(node, "ready")
    problems = [p for p in found.values() if p]
    if problems:
        return "; ".join(problems)
    status = cluster.status()
    cluster.up_carp(status, failed)
    diff = differences(cluster.topology, status, failed)
    return "VIPs not converged: " + describe(diff) if diff else ""


def wait_ready(cluster: Cluster, guest: Guest, nodes: list[str], failed: set[str],
               deadline_s: float) -> None:
    last = ["nothing checked yet"]

    def check() -> None:
        last[0] = not_ready(cluster, guest, nodes, failed)
        if last[0]:
            raise NotReady(last[0])

    if not _polled(check, deadline_s):
        raise TimeoutError(f"vagrant lab {cluster.lab} not ready after {deadline_s:.0f} s; "
                           f"last seen: {last[0]}")


def settle_after_pause(cluster: Cluster, guest: Guest, nodes: list[str], failed: set[str],
                       deadline_s: float) -> None:
    """After a snapshot paused the VMs one by one (seconds each under TCG) or restored an old
    state: a paused owner sent no adverts, so a backup took its VIPs, and its clock fell behind,
    so when chrony steps it forward its own ucarp's timers fire at once. Seen in carp.log:
    mail02 took mail03's VIP as mail03's snapshot ended, and 6 s later mail03 took mail02's
    for 0.24 s (the clock step is inferred: chrony's log was not collected). Every mail
    node's clock is synced afresh (in parallel), then every VIP must stay where the model
    says for two takeover windows running, before any test measures."""
    def resync(node: str) -> str:
        try:
            res = cluster.run(node, guest.resync_clock_argv(), timeout=RESYNC_S)
        except TransportError as exc:
            return f"{node}: {exc}"
        return "" if res.ok else f"{node}: {res}"

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        problems = [p for p in pool.map(resync, nodes) if p]
    if problems:
        raise TimeoutError("clocks not back in step after the pause: " + "; ".join(problems))
    wait_steady(cluster, failed, 2 * takeover_window_s(cluster.topology.advbase), deadline_s)


def wait_steady(cluster: Cluster, failed: set[str], steady_s: float, deadline_s: float) -> None:
    """Block until every VIP has been where the model says in every read for ``steady_s``
    running; on timeout say what was last seen."""
    since: list[float | None] = [None]
    last = ["nothing checked yet"]

    def check() -> None:
        now = time.monotonic()
        diff = differences(cluster.topology, cluster.status(), failed)
        if diff:
            since[0] = None
            last[0] = "VIPs not where the model says: " + describe(diff)
            raise NotReady(last[0])
        if since[0] is None:
            since[0] = now
        if now - since[0] < steady_s:
            last[0] = f"VIPs where the model says for {now - since[0]:.1f} s of {steady_s:.1f} s"
            raise NotReady(last[0])

    if not _polled(check, deadline_s):
        raise TimeoutError(f"vagrant lab {cluster.lab}: VIPs not steady for {steady_s:.0f} s within "
                           f"{deadline_s:.0f} s; last seen: {last[0]}")


def _polled(check: Callable[[], None], deadline_s: float) -> bool:
    """Call ``check`` every POLL_S until it stops raising NotReady; False when ``deadline_s`` ran out."""
    try:
        for attempt in Retrying(stop=stop_after_delay(deadline_s), wait=wait_fixed(POLL_S),
                                retry=retry_if_exception_type(NotReady)):
            with attempt:
                check()
    except RetryError:
        return False
    return True


def wait_listening(cluster: Cluster, guest: Guest, node: str, endpoints: set[str],
                   deadline_s: float) -> None:
    """Block until the node listens on every "address:port" in ``endpoints`` (a started
    daemon binds its ports seconds later on a slow guest); on timeout say which are closed
    and what the node's units report."""
    last = ["nothing checked yet"]

    def check() -> None:
        try:
            res = cluster.run(node, guest.listening_argv(), timeout=30)
        except TransportError as exc:
            last[0] = str(exc)
            raise NotReady(last[0]) from exc
        have = guest.listening(res.stdout)
        closed = sorted(e for e in endpoints if e not in have and f"*:{e.rsplit(':', 1)[1]}" not in have)
        if closed:
            last[0] = "not listening on " + ", ".join(closed)
            raise NotReady(last[0])

    if not _polled(check, deadline_s):
        units = node_problem(cluster, guest, node) or f"{node}: every unit runs"
        raise TimeoutError(f"{node}: {last[0]} after {deadline_s:.0f} s; {units}")
