"""A Cluster for unit tests whose fault primitives only record what they are asked."""

from __future__ import annotations

from mailring.cluster import Cluster
from mailring.topology import load


class Recorder(Cluster):
    """A Cluster whose primitives only record what they are asked (no nodes, no root)."""

    NAME = "recorder"

    def __init__(self) -> None:
        super().__init__(load(), lab="unit")
        self.calls: list[tuple] = []
        self.fail_on: str | None = None
        self.recorded: dict[str, str] = {}

    def _call(self, name: str, *args) -> str:
        self.calls.append((name, *args))
        if name == self.fail_on:
            raise RuntimeError(f"{name} failed")
        return ""

    def up(self) -> None: ...
    def down(self) -> None: ...
    def status(self): ...
    def run(self, node, argv, timeout=60.0, input=None): ...
    def start(self, node, argv): ...
    def probe_argv(self): return []
    def log_text(self, node, service): return ""

    def crash(self, node): self._call("crash", node)
    def boot(self, node): self._call("boot", node)
    def stop_daemon(self, node, daemon): self._call("stop_daemon", node, daemon)
    def start_daemon(self, node, daemon): self._call("start_daemon", node, daemon)
    def isolate(self, node): self._call("isolate", node)
    def rejoin(self, node): self._call("rejoin", node)
    def freeze(self, node, daemon=None): self._call("freeze", node, daemon)
    def thaw(self, node, daemon=None): self._call("thaw", node, daemon)
    def faults(self): return dict(self.recorded)

    def record_fault(self, node, state):
        self.recorded.pop(node, None) if state is None else self.recorded.__setitem__(node, state)

    def haproxy_command(self, node, command): return self._call("haproxy_command", node, command)
