"""Host-side wrapper that runs mailring/probe.py on the client node.

Tests see the cluster the way a mail client does only through this module:
every request is a JSON object handed to ``probe.py`` on the topology's
client node via ``Cluster.run`` / ``Cluster.start``. The host itself never
opens a socket to the cluster. A probe that could not run, or answered with
anything but its JSON, raises ``ProbeError``; a service that failed is a
normal result with ``"ok": false``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from mailring import protocols

if TYPE_CHECKING:
    from mailring.cluster import Cluster, Running

Host = str | IPv4Address
T = TypeVar("T")


def probe_request(req: dict[str, Any]) -> str:
    """The request as probe.py reads it: JSON, with the protocol table it checks greetings by."""
    return json.dumps(with_protocols(req))


def with_protocols(req: dict[str, Any]) -> dict[str, Any]:
    """The request with the protocol table probe.py checks greetings by."""
    return {**req, "protocols": protocols.probe_table()}


def banner_request(host: Host, port: int, protocol: str, tls: bool = False, **kw: Any) -> dict[str, Any]:
    """A banner probe (connect, read the greeting, classify it), for ``Client.request``/``each``."""
    return {"kind": "banner", "host": str(host), "port": port, "protocol": protocol, "tls": tls, **kw}


def http_request(host: Host, port: int, path: str = "/", tls: bool = False, **kw: Any) -> dict[str, Any]:
    """An HTTP GET probe (kw: source, tls_name, timeout)."""
    return {"kind": "http", "host": str(host), "port": port, "path": path, "tls": tls, **kw}


def dns_request(name: str, server: Host | None = None, port: int | None = None, count: int = 1,
                rdtype: str = "A", timeout: float = 3.0) -> dict[str, Any]:
    """A DNS probe: ``count`` fresh queries (no server: the client's own resolv.conf)."""
    req: dict[str, Any] = {"kind": "dns", "name": name, "rdtype": rdtype, "count": count, "timeout": timeout}
    if server is not None:
        req["server"] = str(server)
    if port is not None:
        req["port"] = port
    return req


class ProbeError(RuntimeError):
    """probe.py did not run, exited non-zero, or printed something other than its JSON."""

    def __init__(self, node: str, kind: str, rc: int | None, stderr: str, problem: str) -> None:
        self.node, self.kind, self.rc, self.stderr = node, kind, rc, stderr
        tail = " | ".join(stderr.strip().splitlines()[-5:]) or "(no stderr)"
        super().__init__(f"probe {kind!r} on {node}: {problem} (rc={rc}); stderr: {tail}")


@dataclass(frozen=True)
class Op:
    """One timeline attempt, at the client: invoke time ``t``, completion ``end`` (epoch s)."""

    t: float
    end: float
    target: str
    type: str  # ok | fail
    error: str | None = None
    banner: str | None = None
    local_port: int | None = None

    @property
    def ok(self) -> bool:
        return self.type == "ok"


def target(host: Host, port: int, protocol: str, name: str | None = None,
           tls: bool = False, **extra: Any) -> dict[str, Any]:
    """A timeline target; the default name is ``protocol@host:port``."""
    return {"name": name or f"{protocol}@{host}:{port}", "host": str(host), "port": port,
            "protocol": protocol, "tls": tls, **extra}


def parse_stream(node: str, kind: str, record: Callable[[dict[str, Any]], T], stdout: str,
                 stderr: str = "", rc: int | None = 0, partial: bool = False) -> list[T]:
    """The records of a streaming probe's JSON lines (timeline, writer), each made by ``record``;
    raises unless the probe ended with its done line counting them.

    With ``partial`` (a probe still running) only complete lines count and no done line is due.
    """
    if rc != 0:
        raise ProbeError(node, kind, rc, stderr, f"{kind} probe failed")
    if partial:
        stdout = stdout[: stdout.rfind("\n") + 1]
    out: list[T] = []
    done: dict[str, Any] | None = None
    for n, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if obj.get("done"):
                done = obj
                continue
            out.append(record(obj))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ProbeError(node, kind, rc, stderr,
                             f"line {n} is not a {kind} record ({e}): {line[:200]!r}") from None
    if partial:
        return out
    if done is None:
        raise ProbeError(node, kind, rc, stderr, "the probe ended without its done line")
    if done.get("attempts") != len(out):
        raise ProbeError(node, kind, rc, stderr,
                         f"done line counts {done.get('attempts')} attempts, got {len(out)} lines")
    return out


class Tail(Generic[T]):
    """The records of a running streaming probe, each complete line parsed once as its output
    grows: waits poll ``so_far`` 20 times a second, and parsing the whole output each time
    (a crash test's timeline reaches thousands of lines) kept a core busy per waiting test."""

    def __init__(self, parse: Callable[[str], list[T]]) -> None:
        self._parse, self._upto, self._records = parse, 0, []  # type: ignore[var-annotated]
        self._lock = threading.Lock()

    def update(self, stdout: str) -> list[T]:
        """The records of every complete line of ``stdout`` (the whole output so far)."""
        end = stdout.rfind("\n") + 1
        with self._lock:
            if end > self._upto:
                self._records.extend(self._parse(stdout[self._upto:end]))
                self._upto = end
            return list(self._records)


def parse_timeline(node: str, stdout: str, stderr: str = "", rc: int | None = 0,
                   partial: bool = False) -> list[Op]:
    """The Ops of a timeline's JSON lines (see ``parse_stream``)."""
    def op(obj: dict[str, Any]) -> Op:
        return Op(t=float(obj["t"]), end=float(obj["end"]), target=str(obj["target"]),
                  type=str(obj["type"]), error=obj.get("error"), banner=obj.get("banner"),
                  local_port=obj.get("local_port"))

    return parse_stream(node, "timeline", op, stdout, stderr, rc, partial)


class Stopped:
    """A with-block for a running probe's handle: it ends in ``stop()``; when the block failed,
    a failing stop does not hide the block's own error."""

    def stop(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - the block already failed: keep its error
            if exc_type is None:
                raise


class Timeline(Stopped):
    """A running timeline probe; ``stop()`` ends it and returns every attempt as an ``Op``."""

    def __init__(self, running: Running, node: str, targets: list[dict[str, Any]],
                 timeout: float, record: Callable[[list[Op]], None] | None = None) -> None:
        self.running, self.node, self.targets = running, node, targets
        self._stop_timeout = 3 * timeout + 15
        self._record = record
        self.ops: list[Op] | None = None
        self._tail = Tail(lambda text: parse_timeline(node, text, partial=True))

    def stop(self) -> list[Op]:
        """Close the probe's stdin, wait for it and parse its lines (idempotent); the ops go to
        the client's recorder (a run folder's history) once."""
        if self.ops is None:
            res = self.running.stop(timeout=self._stop_timeout)
            self.ops = parse_timeline(self.node, res.stdout, res.stderr, res.rc)
            if self._record is not None:
                self._record(self.ops)
        return self.ops

    def so_far(self) -> list[Op]:
        """The attempts made so far, while the probe keeps running."""
        return self.ops if self.ops is not None else self._tail.update(self.running.peek())

    def now(self) -> float:
        """The probe's clock: when its latest reported attempt completed.

        Fault times compared with the timeline's ops come from here, never from
        this host's clock: a VM's clock is its own (and a restored snapshot's runs
        behind). Every attempt reported so far was invoked before it; at 20 Hz it
        trails the real moment by about a sampling period, which can only
        lengthen a measured outage."""
        ops = self.so_far()
        if not ops:
            raise RuntimeError(f"the timeline probe on {self.node} has made no attempt yet")
        return max(o.end for o in ops)


class Held:
    """An IMAP session held open on the client (probe kind ``hold``)."""

    def __init__(self, running: Running, node: str) -> None:
        self.running, self.node = running, node

    def lines(self) -> list[dict[str, Any]]:
        text = self.running.peek()
        return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines() if x.strip()]

    def ready(self) -> dict[str, Any] | None:
        """The session's greeting and port once it is logged in; None before."""
        return next((x for x in self.lines() if x.get("ready")), None)

    def finish(self) -> dict[str, Any]:
        """NOOP + LOGOUT on the same connection; the final result."""
        res = self.running.stop(timeout=30)
        results = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
        final = [x for x in results if not x.get("ready")]
        if res.rc != 0 or not final:
            raise ProbeError(self.node, "hold", res.rc, res.stderr, "hold probe gave no result")
        return final[-1]


class Client:
    """Runs probe requests on the cluster's client node."""

    def __init__(self, cluster: Cluster, timeout: float = 30.0,
                 record: Callable[[list[Op]], None] | None = None) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.record = record  # gets every stopped timeline's ops (the run folder's history)

    @property
    def node(self) -> str:
        return self.cluster.topology.client.name

    def request(self, req: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Run one probe request on the client node (by its probe agent) and return its result.
        Safe to call from several threads at once: the agent runs requests side by side.
        A driver that cannot keep a command open (no ``open_pipe``) runs a probe per request."""
        from mailring.agent import AgentError, agent_of

        kind = str(req.get("kind"))
        if timeout is None:  # the probe bounds itself; leave room for the transport
            per_try = float(req.get("timeout") or 5)
            timeout = self.timeout + per_try * max(1, int(req.get("count") or 1))
        if not self.cluster.supports_primitive("open_pipe"):
            return self._run_once(req, kind, timeout)
        try:
            return agent_of(self.cluster).request(with_protocols(req), timeout)
        except AgentError as e:
            raise ProbeError(self.node, kind, None, "", str(e)) from None

    def _run_once(self, req: dict[str, Any], kind: str, timeout: float) -> dict[str, Any]:
        """One probe process for one request (``probe.py '<request>'``)."""
        argv = self.cluster.probe_argv() + [probe_request(req)]
        res = self.cluster.run(self.node, argv, timeout=timeout)
        if res.rc != 0:
            raise ProbeError(self.node, kind, res.rc, res.stderr or res.stdout, "probe exited non-zero")
        try:
            out = json.loads(res.stdout)
        except ValueError:
            out = None
        if not isinstance(out, dict):
            raise ProbeError(self.node, kind, res.rc, res.stderr,
                             f"stdout is not one JSON object: {res.stdout[:300]!r}")
        return out

    def each(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several independent requests at once (each its own session); results in their order."""
        from concurrent.futures import ThreadPoolExecutor

        if len(requests) < 2:
            return [self.request(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(16, len(requests))) as pool:
            return list(pool.map(self.request, requests))

    # convenience -----------------------------------------------------------
    def dns(self, name: str, server: Host | None = None, port: int | None = None, count: int = 1,
            rdtype: str = "A", timeout: float = 3.0) -> dict[str, Any]:
        return self.request(dns_request(name, server, port, count, rdtype, timeout))

    def smtp(self, host: Host, port: int, **kw: Any) -> dict[str, Any]:
        """kw: ehlo, starttls, tls_name, login={user,password}, send={...}, timeout, source."""
        return self.request({"kind": "smtp", "host": str(host), "port": port, **kw})

    def send_mail(self, host: Host, port: int, sender: str, rcpt: str, subject: str, body: str,
                  **kw: Any) -> dict[str, Any]:
        send = {"from": sender, "to": rcpt, "subject": subject, "body": body}
        return self.smtp(host, port, send=send, **kw)

    def pop3(self, host: Host, port: int, user: str, password: str, tls: bool = False,
             **kw: Any) -> dict[str, Any]:
        return self.request({"kind": "pop3", "host": str(host), "port": port, "user": user,
                             "password": password, "tls": tls, **kw})

    def imap(self, host: Host, port: int, user: str, password: str, tls: bool = False,
             search_subject: str | None = None, **kw: Any) -> dict[str, Any]:
        return self.request({"kind": "imap", "host": str(host), "port": port, "user": user,
                             "password": password, "tls": tls, "search_subject": search_subject,
                             **kw})

    def http(self, host: Host, port: int, path: str = "/", tls: bool = False,
             **kw: Any) -> dict[str, Any]:
        return self.request(http_request(host, port, path, tls, **kw))

    def banner(self, host: Host, port: int, protocol: str, tls: bool = False,
               **kw: Any) -> dict[str, Any]:
        return self.request(banner_request(host, port, protocol, tls, **kw))

    def forge(self, forged: str, targets: list[dict[str, Any]], timeout: float = 3.0) -> dict[str, Any]:
        """Send a PROXY header naming ``forged`` to every target ({name, host, port, then,
        greeting_wait}) at once; per target name: connected, greeting, sent, refused, reply,
        local_port, error."""
        targets = [dict(t, host=str(t["host"]), timeout=timeout) for t in targets]
        return self.request({"kind": "forge", "forged": forged, "targets": targets},
                            timeout=self.timeout + 2 * timeout)

    def hold_imap(self, host: Host, port: int, user: str, password: str,
                  max_seconds: float = 60) -> Held:
        """Open an IMAP session and keep it until ``finish()``."""
        req = {"kind": "hold", "host": str(host), "port": port, "user": user, "password": password,
               "max_seconds": max_seconds, "timeout": 5}
        argv = self.cluster.probe_argv() + [probe_request(req)]
        return Held(self.cluster.start(self.node, argv), self.node)

    def timeline(self, targets: list[dict[str, Any]], hz: float = 20, max_seconds: float = 60,
                 timeout: float = 0.5) -> Timeline:
        """Start sampling ``targets`` (see ``target()``) at ``hz``; stop() returns the Ops."""
        targets = [dict(t, host=str(t["host"])) for t in targets]
        for t in targets:
            t.setdefault("name", f"{t['protocol']}@{t['host']}:{t['port']}")
        req = {"kind": "timeline", "targets": targets, "hz": hz, "max_seconds": max_seconds,
               "timeout": timeout}
        running = self.cluster.start(self.node, self.cluster.probe_argv() + [probe_request(req)])
        return Timeline(running, self.node, targets, timeout, self.record)
