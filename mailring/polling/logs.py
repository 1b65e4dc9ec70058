"""Read the daemons' logs from a point on: only what was written after a probe began."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailring.logparse import Record, parse_lines

if TYPE_CHECKING:
    from mailring.cluster import Cluster


class LogCursor:
    """Remembers where logs ended, so a check reads only what was written after a probe began."""

    def __init__(self, cluster: Cluster, where: Sequence[tuple[str, str]]) -> None:
        self.cluster = cluster
        self.marks = {(node, svc): len(cluster.log_text(node, svc)) for node, svc in where}

    def records(self, node: str, service: str) -> list[Record]:
        """The lines ``service`` on ``node`` logged since the cursor was made, parsed."""
        text = self.cluster.log_text(node, service)
        return parse_lines(service, text[self.marks.get((node, service), 0):])
