"""A node's CARP log lines around a moment: what a split-brain report quotes.

A split brain seen by the holder samples says when and who; the CARP speakers'
own logs say why (a late advert, a timer that fired after a clock step, a
preemption). On the VMs the run folder that keeps those logs stays on the CI
machine, so the report itself carries the lines near the double.

Three stamps are read at the start of a line: ISO (``2026-12-03T20:17:57.709901:``,
the Debian guests' ucarp), ctime (``Thu Dec  3 22:16:51 2026:``, the lab's keepalived)
and syslog's (``Dec  3 22:16:51``, FreeBSD's /var/log/messages, whose year is taken
from the moment asked about). Stamps are the writer's local time; a line without one
goes with the line before it.
"""

from __future__ import annotations

import re
from datetime import datetime

ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)")
CTIME = re.compile(r"^([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})")
SYSLOG = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})\b")


def stamp(line: str, year: int) -> float | None:
    """Epoch seconds of the line's leading stamp (local time), None when it has none."""
    try:
        if m := ISO.match(line):
            return datetime.fromisoformat(m.group(1)).timestamp()
        if m := CTIME.match(line):
            return datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y").timestamp()
        if m := SYSLOG.match(line):
            text = f"{year} {' '.join(m.group(1).split())}"
            return datetime.strptime(text, "%Y %b %d %H:%M:%S").timestamp()
    except ValueError:
        return None
    return None


def near(text: str, t0: float, t1: float, slack_s: float = 5.0, limit: int = 20) -> list[str]:
    """The lines stamped from ``t0 - slack_s`` to ``t1 + slack_s``; of more than ``limit``, the
    ``limit`` nearest to ``t0``, in the log's order. A log with no line in that window (a
    guest clock far off this host's) gives its last ``limit`` lines, marked as such."""
    year = datetime.fromtimestamp(t0).year
    lines = [line for line in text.splitlines() if line.strip()]
    dated: list[tuple[int, float, str]] = []
    last: float | None = None
    for i, line in enumerate(lines):
        last = t if (t := stamp(line, year)) is not None else last
        if last is not None and t0 - slack_s <= last <= t1 + slack_s:
            dated.append((i, last, line))
    if not dated:
        return [f"(nothing stamped within {slack_s:g} s of the double; the last {limit} lines)",
                *lines[-limit:]] if lines else []
    if len(dated) > limit:
        dated = sorted(sorted(dated, key=lambda d: abs(d[1] - t0))[:limit])
    return [line for _, _, line in dated]
