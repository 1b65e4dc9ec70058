"""The mail-flow checker's moving parts: the writer on the client, drained queues, mailbox reads.

``FlowWriter`` runs probe kind ``writer`` on the client node (numbered
messages at a steady rate, to chosen VIPs or to a DNS name resolved per
connection) and turns its JSON lines into ``Attempt``s, also while it runs.
``check_flow`` waits until every running mail node's Postfix queue is empty
(``postqueue -j``, polled, never slept on), reads every user's Message-IDs over
IMAP and hands both to the pure ``mailring.checks.mailflow.judge``.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mailring.checks import CheckError, NotYet
from mailring.checks.mailflow import ACCEPTED, Attempt, Verdict, judge
from mailring.client import ProbeError, Stopped, Tail, parse_stream
from mailring.polling.wait import eventually

if TYPE_CHECKING:
    from mailring.client import Client
    from mailring.cluster import Cluster, Running
    from mailring.topology import Topology

DRAIN_S = 60.0  # queues empty once the healed nodes have delivered what they hold


def node_of(topo: Topology, banner: str | None) -> str | None:
    """The mail node a Postfix banner names ("... ESMTP mail02"); None if not exactly one."""
    names = [n.name for n in topo.mail_nodes if banner and n.name in banner.split()]
    return names[0] if len(names) == 1 else None


def parse_attempts(topo: Topology, node: str, stdout: str, stderr: str = "", rc: int | None = 0,
                   partial: bool = False) -> list[Attempt]:
    """The Attempts of a writer's JSON lines (see ``mailring.client.parse_stream``)."""
    def attempt(obj: dict[str, Any]) -> Attempt:
        return Attempt(seq=int(obj["seq"]), message_id=str(obj["message_id"]), t=float(obj["t"]),
                       end=float(obj["end"]), outcome=str(obj["outcome"]), host=obj.get("host"),
                       node=node_of(topo, obj.get("banner")), queue_id=obj.get("queue_id"),
                       code=obj.get("code"), stage=obj.get("stage"), error=obj.get("error"))

    return parse_stream(node, "writer", attempt, stdout, stderr, rc, partial)


def accepted_on(attempts: list[Attempt], node: str | None = None, since: float = 0.0,
                other_than: str | None = None) -> list[Attempt]:
    """Accepted attempts begun at or after ``since``, on ``node`` (or on any node but ``other_than``)."""
    return [a for a in attempts if a.outcome == ACCEPTED and a.t >= since
            and (node is None or a.node == node) and (other_than is None or a.node != other_than)]


class FlowWriter(Stopped):
    """A running writer; ``so_far()`` while it runs, ``stop()`` for the whole history."""

    def __init__(self, client: Client, hosts: list[str] | None = None, name: str | None = None,
                 rate: float = 20, count: int = 3000, max_seconds: float = 150, timeout: float = 3.0,
                 prefix: str | None = None) -> None:
        topo = client.cluster.topology
        self.topology, self.node = topo, client.node
        self.prefix = prefix or f"mailring-flow-{uuid.uuid4().hex[:10]}"
        self.recipient = topo.users[-1]
        req = {"kind": "writer", "port": topo.services["smtp"].port, "from": topo.users[0].address,
               "to": self.recipient.address, "prefix": self.prefix,
               "domain": f"{topo.client.name}.{topo.domain}", "rate": rate, "count": count,
               "max_seconds": max_seconds, "timeout": timeout}
        req.update({"hosts": [str(h) for h in hosts]} if hosts else {"name": name})
        self._stop_timeout = max_seconds + 6 * timeout + 20
        self.running: Running = client.cluster.start(
            client.node, client.cluster.probe_argv() + [json.dumps(req)])
        self.attempts: list[Attempt] | None = None
        self._tail = Tail(lambda text: parse_attempts(self.topology, self.node, text, partial=True))

    def so_far(self) -> list[Attempt]:
        if self.attempts is not None:
            return self.attempts
        return self._tail.update(self.running.peek())

    def wait_for(self, check: Callable[[list[Attempt]], int], at_least: int, deadline_s: float,
                 what: str) -> list[Attempt]:
        """Wait until ``check(attempts so far)`` counts ``at_least``; the attempts then."""
        def ready() -> list[Attempt]:
            ops = self.so_far()
            seen = check(ops)
            if seen < at_least:
                last = ops[-1].describe() if ops else "no attempt yet"
                raise NotYet(f"{seen} of {at_least} after {len(ops)} attempts; last {last}")
            return ops

        return eventually(ready, deadline_s, what, poll_s=0.1)

    def stop(self) -> list[Attempt]:
        """Stop submitting (in-flight attempts finish) and return every attempt."""
        if self.attempts is None:
            res = self.running.stop(timeout=self._stop_timeout)
            self.attempts = parse_attempts(self.topology, self.node, res.stdout, res.stderr, res.rc)
        return self.attempts


def queue_entries(cluster: Cluster, node: str) -> list[dict[str, Any]]:
    """The node's Postfix queue, one dict per message (``postqueue -j``)."""
    res = cluster.run(node, ["postqueue", "-j"], timeout=30)
    if not res.ok:
        raise RuntimeError(f"postqueue -j on {node}: {res}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def take_queued(cluster: Cluster, node: str, queue_id: str) -> dict[str, Any] | None:
    """The message ``queue_id`` in ``node``'s Postfix queue, deleted from it (``postsuper -d``)
    so mail that cannot leave the lab (relayed to an outside domain) is not left waiting;
    None when the queue does not hold it."""
    entry = next((e for e in queue_entries(cluster, node) if e.get("queue_id") == queue_id), None)
    if entry is not None:
        res = cluster.run(node, ["postsuper", "-d", queue_id], timeout=30)
        if not res.ok:
            raise RuntimeError(f"postsuper -d {queue_id} on {node}: {res}")
    return entry


def running_mail_nodes(cluster: Cluster) -> tuple[list[str], set[str]]:
    """(mail nodes running now, mail nodes down)."""
    status = cluster.status()
    up = [n.name for n in cluster.topology.mail_nodes if status.nodes[n.name].state in ("up", "isolated")]
    return up, {n.name for n in cluster.topology.mail_nodes} - set(up)


def wait_drained(cluster: Cluster, deadline_s: float = DRAIN_S) -> dict[tuple[str, str], str]:
    """Wait until every running mail node's queue is empty; return what is left on timeout
    ((node, queue id) -> "<node> <queue> <first delay reason>"), {} once drained."""
    left: dict[tuple[str, str], str] = {}
    unread: dict[str, str] = {}  # node -> why its queue could not be read

    def drained() -> None:
        left.clear()
        unread.clear()
        for node in running_mail_nodes(cluster)[0]:
            try:
                entries = queue_entries(cluster, node)
            except RuntimeError as exc:  # a Postfix a heal has just started has no showq yet
                unread[node] = str(exc)
                continue
            for entry in entries:
                reason = next((r.get("delay_reason") for r in entry.get("recipients", [])
                               if r.get("delay_reason")), "")
                left[(node, entry["queue_id"])] = f"{node} {entry.get('queue_name')} {reason}".strip()
        seen = [f"queue unreadable: {why}" for why in unread.values()]
        if left:
            shown = "; ".join(f"{q} on {w}" for (_, q), w in list(left.items())[:4])
            seen.insert(0, f"{len(left)} messages queued: {shown}")
        if seen:
            raise NotYet("; ".join(seen))

    try:
        eventually(drained, deadline_s, "every running node's Postfix queue empty", poll_s=0.2)
    except AssertionError:
        if unread:  # what such a node holds is unknown: neither drained nor queued
            raise CheckError(f"the Postfix queue of {', '.join(sorted(unread))} could not be read for "
                             f"{deadline_s:g} s: {'; '.join(unread.values())}") from None
        return dict(left)
    return {}


def delivered(client: Client, host: str, match: str) -> Counter[str]:
    """Message-ID -> copies over every user's INBOX (IMAP through ``host``), for IDs containing ``match``."""
    topo = client.cluster.topology
    res = client.request({"kind": "mailbox", "host": host, "port": topo.services["imap"].port,
                          "users": [{"user": u.address, "password": u.password} for u in topo.users],
                          "match": match, "timeout": 10})
    if not res["ok"]:
        raise ProbeError(client.node, "mailbox", 0, "", f"reading the mailboxes through {host}: {res}")
    return Counter(m for ids in res["mailboxes"].values() for m in ids)


def check_flow(cluster: Cluster, client: Client, attempts: list[Attempt], prefix: str,
               drain_s: float = DRAIN_S) -> Verdict:
    """After heal and convergence: queues drained, mailboxes read, every message judged."""
    left = wait_drained(cluster, drain_s)
    _, down = running_mail_nodes(cluster)
    host = str(next(v.address for v in cluster.topology.vips
                    if cluster.topology.expected_owner(v, down) is not None))
    counts = delivered(client, host, prefix)
    return judge(attempts, counts, down=down, queued=left, prefix=prefix)
