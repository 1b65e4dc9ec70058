"""Nothing lost: judge a mail-flow history against what the mailboxes hold, Jepsen-style.

The writer (probe kind ``writer``) records every submission attempt: accepted
(250 after DATA, with the queue id and the node whose banner answered), refused
(a 4xx/5xx reply, with its code) or error (no final reply; the message may or
may not have been taken). After the faults are healed and every queue has
drained, a reader counts each Message-ID over every mailbox. ``judge`` is pure:
attempts + delivered counts (+ what is still queued, and on which nodes that are
down) -> a ``Verdict`` that sorts every message into

* delivered once: accepted and in a mailbox exactly once;
* lost: accepted, never delivered, and in no queue that could still deliver it;
* duplicated: in the mailboxes more than once (whatever its outcome);
* refused: the cluster said no (and did not deliver it);
* held: accepted, not delivered, still in a queue, or accepted by a node that is down;
* unacknowledged: errors without a final reply (delivered once or not: both are allowed);
* refused but delivered: a refusal the client would retry, yet it was delivered;
* unexpected: a Message-ID of this run in a mailbox that no attempt sent.

The verdict is valid when nothing is lost, duplicated, refused-but-delivered or
unexpected. Every line it prints names the messages (sequence number,
Message-ID, queue id, node).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ACCEPTED, REFUSED, ERROR = "accepted", "refused", "error"
SHOWN = 12  # messages named per line; the count is always complete


@dataclass(frozen=True)
class Attempt:
    """One submission as the writer saw it (epoch times on the client's clock)."""

    seq: int
    message_id: str
    t: float
    end: float
    outcome: str  # accepted | refused | error
    host: str | None = None  # the address connected to (a VIP)
    node: str | None = None  # the node whose banner answered
    queue_id: str | None = None
    code: int | None = None
    stage: str | None = None  # where it ended: resolve, connect, banner, ehlo, mail, rcpt, data, done
    error: str | None = None

    def describe(self) -> str:
        where = f" via {self.host}" if self.host else ""
        if self.outcome == ACCEPTED:
            return f"#{self.seq} {self.message_id} (queued as {self.queue_id} on {self.node}{where})"
        what = f"{self.code}" if self.outcome == REFUSED else f"{self.error} at {self.stage}"
        return f"#{self.seq} {self.message_id} ({self.outcome}: {what}{where})"


@dataclass
class Verdict:
    attempts: int
    delivered_once: list[Attempt] = field(default_factory=list)
    lost: list[Attempt] = field(default_factory=list)
    duplicated: list[tuple[Attempt, int]] = field(default_factory=list)
    refused: list[Attempt] = field(default_factory=list)
    held: list[tuple[Attempt, str]] = field(default_factory=list)  # (attempt, where it waits)
    unacknowledged: list[Attempt] = field(default_factory=list)
    refused_but_delivered: list[Attempt] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not (self.lost or self.duplicated or self.refused_but_delivered or self.unexpected)

    def accepted(self) -> int:
        """Messages the cluster said it took (however they ended)."""
        return (len(self.delivered_once) + len(self.lost) + len(self.held)
                + sum(1 for a, _ in self.duplicated if a.outcome == ACCEPTED))

    def counts(self) -> dict[str, int]:
        return {"attempts": self.attempts, "delivered once": len(self.delivered_once),
                "lost": len(self.lost), "duplicated": len(self.duplicated), "refused": len(self.refused),
                "held": len(self.held), "unacknowledged": len(self.unacknowledged),
                "refused but delivered": len(self.refused_but_delivered), "unexpected": len(self.unexpected)}

    def summary(self) -> str:
        return ", ".join(f"{n} {k}" for k, n in self.counts().items())

    def explain(self) -> str:
        """The summary, then one line per kind of problem naming its messages."""
        lines = [("valid: " if self.valid else "INVALID: ") + self.summary()]
        for label, items in (("lost", [a.describe() for a in self.lost]),
                             ("duplicated", [f"{a.describe()} x{n}" for a, n in self.duplicated]),
                             ("refused but delivered", [a.describe() for a in self.refused_but_delivered]),
                             ("unexpected", list(self.unexpected)),
                             ("held", [f"{a.describe()} in {w}" for a, w in self.held])):
            if items:
                more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
                lines.append(f"{label} ({len(items)}): " + "; ".join(items[:SHOWN]) + more)
        return "\n".join(lines)


def judge(attempts: Iterable[Attempt], delivered: Mapping[str, int], down: Iterable[str] = (),
          queued: Mapping[tuple[str, str], str] | None = None, prefix: str = "") -> Verdict:
    """Sort every attempted message by what became of it.

    ``delivered``: Message-ID -> copies found over every mailbox. ``down``: nodes
    not running now (what they accepted may still be in their spool). ``queued``:
    (node, queue id) -> where it waits, for every entry still in a running node's queue
    (a queue id names a message on its own node only).
    ``prefix``: Message-IDs of this run contain it (others in the mailboxes are ignored).
    """
    history = sorted(attempts, key=lambda a: a.seq)
    seqs = [a.seq for a in history]
    if len(set(seqs)) != len(seqs):
        raise ValueError("the history repeats a sequence number: " + ", ".join(
            str(s) for s in sorted({s for s in seqs if seqs.count(s) > 1})))
    down, queued = set(down), dict(queued or {})
    v = Verdict(attempts=len(history))
    sent = set()
    for a in history:
        sent.add(a.message_id)
        n = delivered.get(a.message_id, 0)
        if n > 1:
            v.duplicated.append((a, n))
        elif a.outcome == ACCEPTED:
            if n == 1:
                v.delivered_once.append(a)
            elif (a.node, a.queue_id) in queued:
                v.held.append((a, queued[(a.node, a.queue_id)]))
            elif a.node in down:
                v.held.append((a, f"{a.node} (down)"))
            else:
                v.lost.append(a)
        elif a.outcome == REFUSED:
            (v.refused_but_delivered if n else v.refused).append(a)
        else:
            v.unacknowledged.append(a)
    v.unexpected = sorted(m for m in delivered if prefix in m and m not in sent)
    return v
