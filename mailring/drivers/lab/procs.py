"""A lab node's processes, seen from the host: find them, run commands among them, kill them.

A node's processes are the ones in its network namespace (``ip netns pids``);
its init is the one whose pid in the node's own PID namespace is 1. Commands
enter the init's namespaces with ``nsenter``; ``LabRunning`` is one that keeps
running while the caller reads its output (a timeline), ``ProcessPipe`` one talked to in
lines (the probe agent).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from mailring.cluster import Pipe, Result, Running, TransportError
from mailring.drivers.lab import netns


def netns_pids(ns: str) -> list[int]:
    """Every process in network namespace ``ns`` ([] when it does not exist)."""
    return netns.pids_by_namespace([ns]).get(ns, [])


def nspid(pid: int) -> int | None:
    """The pid a process has in its own (innermost) PID namespace; None when it is gone (a
    process dying while its status is read gives ESRCH, not ENOENT)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def start_time(pid: int) -> str | None:
    """A live process's start time (clock ticks after boot), which with its pid names it
    for good; None when it is gone or a zombie (whose namespaces cannot be entered)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


class Inits:
    """Each node's init (PID 1 of its namespaces) as last found, by (pid, start time): a
    zombie, a gone process or a reused pid is not it any more."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[int, str]] = {}

    def known(self, node: str) -> int | None:
        """The init found before, if it is still the same live process."""
        found = self._found.get(node)
        return found[0] if found is not None and start_time(found[0]) == found[1] else None

    def processes(self, spaces: dict[str, str], recorded: Iterable[str]) -> dict[str, list[int]]:
        """Namespace -> processes, for each node (node -> namespace) whose namespace exists, as
        far as its state needs them: its init when known and alive; none for a node whose
        state the record gives (``recorded``: a crashed one has none); a /proc scan only for
        the others, which a crash test's watches would otherwise repeat on every look
        (10-30 ms of CPU each)."""
        pids = {ns: [pid] for node, ns in spaces.items() if (pid := self.known(node)) is not None}
        recorded = set(recorded)
        for node in recorded:
            if (ns := spaces[node]) not in pids and netns.inode_link(ns) is not None:
                pids[ns] = []
        unknown = [node for node, ns in spaces.items() if ns not in pids and node not in recorded]
        pids.update(netns.pids_by_namespace(spaces[node] for node in unknown))
        for node in unknown:
            self.remember(node, pids.get(spaces[node], []))
        return pids

    def remember(self, node: str, pids: list[int]) -> int | None:
        """Find the node's init among the processes of its namespace, and remember it."""
        pid = next((p for p in pids if nspid(p) == 1), None)
        started = start_time(pid) if pid is not None else None
        if pid is None or started is None:
            self._found.pop(node, None)
            return None
        self._found[node] = (pid, started)
        return pid


def nsenter(pid: int, argv: list[str]) -> list[str]:
    """``argv`` run in the network, mount, PID and UTS namespaces of process ``pid``."""
    return ["nsenter", "-t", str(pid), "-n", "-m", "-p", "-u", "--", *argv]


def kill_all(spaces: list[str], deadline_s: float = 5.0) -> None:
    """SIGKILL every process in the namespaces (all at once) and wait (bounded) until none is
    left (one pass over /proc per look, not one per namespace)."""
    for pids in netns.pids_by_namespace(spaces).values():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + deadline_s
    while any(netns.pids_by_namespace(spaces).values()) and time.monotonic() < deadline:
        time.sleep(0.02)


def wait_empty(ns: str, deadline_s: float = 5.0) -> None:
    """Wait (bounded) until no process is left in a namespace after its processes were killed."""
    deadline = time.monotonic() + deadline_s
    while netns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.02)


class LabRunning(Running):
    """A command running in a node; its output is read while it runs, ``stop`` ends it."""

    def __init__(self, argv: list[str], cmd: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [threading.Thread(target=drain_into, args=(s, b), daemon=True)
                        for s, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()

    def peek(self) -> str:
        return "".join(list(self.out))

    def stop(self, timeout: float = 10.0) -> Result:
        end(self.proc, timeout)
        for t in self.readers:
            t.join(timeout)
        return Result(self.argv, self.proc.returncode, "".join(self.out), "".join(self.err))


class ProcessPipe(Pipe):
    """A local process (nsenter into a node, for the lab) with its stdin and stdout as line pipes."""

    def __init__(self, argv: list[str], cmd: list[str]) -> None:
        self.argv = argv
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as exc:
            raise TransportError(f"cannot run {argv[0]}: {exc}") from exc
        self.err: collections.deque[str] = collections.deque(maxlen=50)
        self.err_reader = threading.Thread(target=drain_into, args=(self.proc.stderr, self.err), daemon=True)
        self.err_reader.start()

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise TransportError(f"{self.argv[0]} is gone: {exc}") from exc

    def readline(self) -> str:
        return self.proc.stdout.readline()

    def stderr(self) -> str:
        return "".join(list(self.err))

    def close(self, timeout: float = 10.0) -> int | None:
        end(self.proc, timeout)
        self.err_reader.join(timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


def end(proc: subprocess.Popen, timeout: float) -> None:
    """Close a started command's stdin and wait for it; past ``timeout`` kill it."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        # nsenter -p forks: the command is nsenter's child, inside the node; kill it first
        for child in children(proc.pid):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait()


def drain_into(stream, buf: list[str]) -> None:
    """Append every line of ``stream`` to ``buf`` (in a reader thread)."""
    for line in stream:
        buf.append(line)


def children(pid: int) -> list[int]:
    """The direct children of a host process."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []
