"""The host's end of the probe agent: one ``probe.py --serve`` on the client node per session.

Starting a probe process per request costs a process, an interpreter and its
imports on the client node each time; the agent is started once (over a
``Pipe`` the driver opens: a process in client01's namespaces on the lab, one
SSH channel on the VMs) and answers one-shot requests as JSON lines, matched
by ``id``. Requests from several threads are in flight at once; a reader
thread hands each result to the thread waiting for it. Streaming probes
(timeline, hold, writer) keep their own process: they end by stdin EOF.
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from typing import TYPE_CHECKING, Any

from mailring.cluster import TransportError

if TYPE_CHECKING:
    from mailring.cluster import Cluster, Pipe

HELLO_S = 20.0  # the agent's first line: an interpreter starting on a loaded node (or a TCG VM)


class AgentError(RuntimeError):
    """The agent did not start, ended, or wrote something that is not its protocol."""


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: str | None = None


class ProbeAgent:
    """Requests to one running ``probe.py --serve``; ``request`` is safe from many threads."""

    def __init__(self, pipe: Pipe, node: str, hello_s: float = HELLO_S) -> None:
        self.pipe, self.node = pipe, node
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards _waiting, _ended and the writes to the pipe
        self._waiting: dict[int, _Waiter] = {}
        self._ended: str | None = None  # why the agent is gone, once it is
        hello = _Waiter()
        self._hello: _Waiter | None = hello
        self._reader = threading.Thread(target=self._read, name=f"probe-agent-{node}", daemon=True)
        self._reader.start()
        if not hello.done.wait(hello_s) or hello.error:
            why = hello.error or f"no first line in {hello_s:g} s"
            self.close(timeout=2)
            raise AgentError(f"probe agent on {node} did not start: {why}; stderr: {self._tail()}")

    @property
    def alive(self) -> bool:
        return self._ended is None

    def _tail(self) -> str:
        return " | ".join(self.pipe.stderr().strip().splitlines()[-5:]) or "(no stderr)"

    def _read(self) -> None:
        """Hand each line to its waiter until stdout ends; then fail everyone still waiting."""
        why = "its stdout ended"
        try:
            while line := self.pipe.readline():
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError("not an object")
                except ValueError:
                    why = f"it wrote a line that is not a JSON object: {line[:200]!r}"
                    break
                with self._lock:
                    hello, self._hello = self._hello, None
                    waiter = None if hello else self._waiting.pop(obj.get("id"), None)  # type: ignore[arg-type]
                if hello is not None:  # the first line
                    if obj.get("agent") != "probe.py":
                        hello.error = f"its first line is not the agent's hello: {line[:200]!r}"
                    hello.done.set()
                elif waiter is not None:  # None: a request whose caller gave up waiting
                    waiter.result = obj
                    waiter.done.set()
        except Exception as e:  # noqa: BLE001 - a transport failure ends the agent
            why = f"reading from it failed: {e}"
        self._end(why)

    def _end(self, why: str) -> None:
        with self._lock:
            if self._ended is None:
                self._ended = why
            waiting, self._waiting = self._waiting, {}
            hello, self._hello = self._hello, None
        for w in [*waiting.values(), *([hello] if hello else [])]:
            w.error = w.error or why
            w.done.set()

    def request(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request (a probe request as ``mailring.client.probe_request`` makes it, as a
        dict) and wait for its result. A failed service is a result; a malformed request or an
        agent that is gone raises AgentError, no answer within ``timeout`` TransportError."""
        waiter = _Waiter()
        with self._lock:
            if self._ended is not None:
                raise AgentError(f"probe agent on {self.node} has ended: {self._ended}")
            rid = next(self._ids)
            self._waiting[rid] = waiter
            try:
                self.pipe.send(json.dumps({**req, "id": rid}))
            except Exception:
                self._waiting.pop(rid, None)
                raise
        if not waiter.done.wait(timeout):
            with self._lock:
                self._waiting.pop(rid, None)
            raise TransportError(f"{self.node}: probe {req.get('kind')!r} gave no answer in {timeout:g} s")
        if waiter.result is None:
            raise AgentError(f"probe agent on {self.node} ended during a {req.get('kind')!r} request: "
                             f"{waiter.error}; stderr: {self._tail()}")
        out = dict(waiter.result)
        out.pop("id", None)
        if out.pop("bad_request", False) or out.pop("internal_error", False):
            raise AgentError(f"probe {req.get('kind')!r} on {self.node}: {out.get('error')}")
        return out

    def close(self, timeout: float = 10.0) -> int | None:
        """Close the agent's stdin (it finishes what is in flight and exits) and wait for it."""
        rc = self.pipe.close(timeout)
        self._reader.join(timeout)
        self._end("it was closed")
        return rc


_AGENTS: weakref.WeakKeyDictionary[Cluster, ProbeAgent] = weakref.WeakKeyDictionary()
_AGENTS_LOCK = threading.Lock()


def agent_of(cluster: Cluster) -> ProbeAgent:
    """The cluster's probe agent on its client node: started on first use, kept for the
    cluster's life, started again if it ended (the client node rebooted, SSH dropped)."""
    with _AGENTS_LOCK:
        agent = _AGENTS.get(cluster)
        if agent is None or not agent.alive:
            if agent is not None:
                agent.close(timeout=2)  # reap what is left of the one that ended
            node = cluster.topology.client.name
            agent = _AGENTS[cluster] = ProbeAgent(
                cluster.open_pipe(node, cluster.probe_argv() + ["--serve"]), node)
        return agent


def close_agent(cluster: Cluster) -> None:
    """End the cluster's probe agent, if one runs (a driver's down() does, before it removes nodes)."""
    with _AGENTS_LOCK:
        agent = _AGENTS.pop(cluster, None)
    if agent is not None:
        agent.close()
