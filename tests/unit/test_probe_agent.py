"""The probe agent's protocol: ``probe.py --serve`` as a subprocess against throwaway servers,
and the host's ``ProbeAgent`` talking to it over a local pipe (the lab's ProcessPipe)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from probe_servers import PROBE, banner
from recorder import Recorder

from mailring.agent import AgentError, ProbeAgent, close_agent
from mailring.client import Client, ProbeError, banner_request, with_protocols
from mailring.cluster import TransportError
from mailring.drivers.lab.procs import ProcessPipe


def slow_banner(delay: float, payload: bytes):
    def handle(conn: socket.socket) -> None:
        time.sleep(delay)  # a server that greets late: the agent must not wait on it for others
        conn.sendall(payload)
        while conn.recv(1024):
            pass
    return handle


def banner_req(port: int, protocol: str = "smtp", **kw: object) -> dict:
    return with_protocols({"kind": "banner", "host": "127.0.0.1", "port": port, "protocol": protocol,
                           "timeout": 5, **kw})


class Served:
    """probe.py --serve as a subprocess; ``ask`` writes a line, ``answer`` reads one."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, PROBE, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, line: str | dict) -> None:
        assert self.proc.stdin
        self.proc.stdin.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict:
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        assert line, f"the agent ended: {self.proc.stderr.read() if self.proc.stderr else ''}"
        return json.loads(line)

    def finish(self) -> tuple[int, list[dict]]:
        """Close stdin; the exit code and every line written after it."""
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.proc.stdin.close()
        rest = [json.loads(x) for x in self.proc.stdout.read().splitlines() if x.strip()]
        rc = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc, rest


@pytest.fixture
def served():
    agents: list[Served] = []

    def start() -> Served:
        agents.append(Served())
        return agents[-1]

    yield start
    for a in agents:
        if a.proc.poll() is None:
            a.proc.kill()
            a.proc.wait()
        for stream in (a.proc.stdin, a.proc.stdout, a.proc.stderr):
            if stream and not stream.closed:
                stream.close()


# --- the agent end: probe.py --serve ------------------------------------------------------
def test_the_agent_greets_then_answers_each_request_by_its_id(served, serve) -> None:
    srv = serve(banner(b"220 test ESMTP\r\n"))
    agent = served()
    assert agent.answer() == {"agent": "probe.py", "protocol": 1}
    agent.ask({**banner_req(srv.port), "id": 7})
    out = agent.answer()
    assert out["id"] == 7 and out["ok"] is True and out["kind"] == "banner", out
    assert out["banner"] == "220 test ESMTP" and out["local_port"] == srv.peers[0]
    agent.ask({**banner_req(srv.port), "id": "second"})
    assert agent.answer()["id"] == "second"
    assert agent.finish() == (0, [])


def test_requests_run_side_by_side_and_answer_as_they_finish(served, serve) -> None:
    slow = serve(slow_banner(1.5, b"220 slow ESMTP\r\n"))
    fast = serve(banner(b"220 fast ESMTP\r\n"))
    agent = served()
    agent.answer()
    began = time.monotonic()
    agent.ask({**banner_req(slow.port), "id": 1})
    agent.ask({**banner_req(fast.port), "id": 2})
    first, second = agent.answer(), agent.answer()
    assert (first["id"], first["banner"]) == (2, "220 fast ESMTP"), first
    assert (second["id"], second["banner"]) == (1, "220 slow ESMTP"), second
    assert first["elapsed"] < 1.0 <= second["elapsed"]  # the fast one did not queue behind the slow
    assert time.monotonic() - began >= 1.5


@pytest.mark.parametrize(("line", "rid", "error"), [
    ("not json", None, "not JSON"),
    ('{"kind": "banner"}', None, "needs an id"),
    ('{"kind": "banner", "id": true}', None, "needs an id"),
    ('{"kind": "nope", "id": 3}', 3, "unknown kind"),
    ('{"kind": "timeline", "id": 4, "targets": []}', 4, "unknown kind"),  # streams keep their process
    ('{"kind": "smtp", "id": 5, "host": "127.0.0.1", "port": "25"}', 5, "wrong type"),
])
def test_a_malformed_line_is_answered_and_the_agent_goes_on(served, serve, line: str, rid,
                                                             error: str) -> None:
    srv = serve(banner(b"220 test ESMTP\r\n"))
    agent = served()
    agent.answer()
    agent.ask(line)
    out = agent.answer()
    assert out["id"] == rid and out["ok"] is False and out["bad_request"] is True, out
    assert out["error"].startswith("bad request: ") and error in out["error"], out
    agent.ask({**banner_req(srv.port), "id": 9})
    assert agent.answer()["ok"] is True


def test_at_stdin_eof_the_requests_in_flight_finish_then_it_exits_0(served, serve, refused_port) -> None:
    slow = serve(slow_banner(0.5, b"220 slow ESMTP\r\n"))
    agent = served()
    agent.answer()
    agent.ask({**banner_req(slow.port), "id": 1})
    agent.ask({**banner_req(refused_port), "id": 2})
    rc, rest = agent.finish()
    assert rc == 0
    assert {r["id"]: r["ok"] for r in rest} == {1: True, 2: False}
    assert next(r for r in rest if r["id"] == 2)["error"].startswith("ConnectionRefusedError")


def test_the_one_shot_cli_still_works_beside_it(serve) -> None:
    srv = serve(banner(b"220 test ESMTP\r\n"))
    res = subprocess.run([sys.executable, PROBE, json.dumps(banner_req(srv.port))],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and json.loads(res.stdout)["ok"] is True, res


# --- the host end: ProbeAgent -------------------------------------------------------------
@pytest.fixture
def host_agent():
    made: list[ProbeAgent] = []

    def start(argv: list[str] | None = None, hello_s: float = 20) -> ProbeAgent:
        argv = argv or [sys.executable, PROBE, "--serve"]
        made.append(ProbeAgent(ProcessPipe(argv, argv), "local", hello_s=hello_s))
        return made[-1]

    yield start
    for a in made:
        a.close(timeout=5)


def test_many_threads_each_get_their_own_result(host_agent, serve) -> None:
    servers = [serve(banner(f"220 server{i} ESMTP\r\n".encode())) for i in range(8)]
    agent = host_agent()
    results: dict[int, dict] = {}

    def ask(i: int) -> None:
        results[i] = agent.request(banner_req(servers[i].port), timeout=30)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert {i: r["banner"] for i, r in results.items()} == {i: f"220 server{i} ESMTP" for i in range(8)}
    assert all("id" not in r for r in results.values())
    assert agent.close() == 0 and not agent.alive


def test_a_failed_service_is_a_result_a_bad_request_raises(host_agent, refused_port) -> None:
    agent = host_agent()
    out = agent.request(banner_req(refused_port), timeout=30)
    assert out["ok"] is False and out["error"].startswith("ConnectionRefusedError"), out
    with pytest.raises(AgentError, match="bad request: .*protocol must be one of"):
        agent.request(banner_req(refused_port, protocol="gopher"), timeout=30)
    assert agent.alive


def test_no_answer_in_time_raises_and_the_agent_stays_usable(host_agent, serve) -> None:
    slow = serve(slow_banner(2.0, b"220 slow ESMTP\r\n"))
    fast = serve(banner(b"220 fast ESMTP\r\n"))
    agent = host_agent()
    with pytest.raises(TransportError, match="gave no answer in 0.3 s"):
        agent.request(banner_req(slow.port), timeout=0.3)
    assert agent.request(banner_req(fast.port), timeout=30)["banner"] == "220 fast ESMTP"


def test_an_agent_that_dies_fails_its_waiters_and_says_so(host_agent, serve) -> None:
    slow = serve(slow_banner(5.0, b"220 slow ESMTP\r\n"))
    agent = host_agent()
    failed: list[BaseException] = []

    def ask() -> None:
        try:
            agent.request(banner_req(slow.port, timeout=10), timeout=30)
        except AgentError as e:
            failed.append(e)

    waiter = threading.Thread(target=ask)
    waiter.start()
    while not slow.peers:  # the request is in flight: the agent has connected
        time.sleep(0.01)
    agent.pipe.proc.kill()  # type: ignore[attr-defined]
    waiter.join(10)
    assert failed and "ended during a 'banner' request" in str(failed[0])
    assert not agent.alive
    with pytest.raises(AgentError, match="has ended"):
        agent.request(banner_req(slow.port), timeout=5)


def test_a_program_that_is_not_the_agent_is_refused_at_start(host_agent) -> None:
    with pytest.raises(AgentError, match="first line is not the agent's hello"):
        not_agent = "import sys; print('{\"hello\": 1}', flush=True); sys.stdin.read()"
        host_agent([sys.executable, "-c", not_agent])
    with pytest.raises(AgentError, match="did not start: its stdout ended"):
        host_agent([sys.executable, "-c", "import sys; sys.stderr.write('no python here')"])


# --- the client's end: Client.request and Client.each through the cluster's agent --------------
class LocalCluster(Recorder):
    """A cluster whose client node is this host: open_pipe runs the command here."""

    def __init__(self) -> None:
        super().__init__()
        self.pipes = 0

    def probe_argv(self) -> list[str]:
        return [sys.executable, PROBE]

    def open_pipe(self, node: str, argv: list[str]) -> ProcessPipe:
        self.pipes += 1
        return ProcessPipe(argv, argv)


def test_the_client_keeps_one_agent_and_opens_independent_sessions_at_once(serve) -> None:
    slow = [serve(slow_banner(1.0, f"220 slow{i} ESMTP\r\n".encode())) for i in range(4)]
    cluster = LocalCluster()
    client = Client(cluster)
    try:
        began = time.monotonic()
        answers = client.each([banner_request("127.0.0.1", s.port, "smtp", timeout=5) for s in slow])
        took = time.monotonic() - began
        assert [a["banner"] for a in answers] == [f"220 slow{i} ESMTP" for i in range(4)]  # in order
        assert took < 3.5, f"four 1 s greetings took {took:.1f} s: not at once"
        assert client.banner("127.0.0.1", slow[0].port, "smtp")["ok"]
        assert cluster.pipes == 1  # one agent for every request
        with pytest.raises(ProbeError, match="bad request"):
            client.banner("127.0.0.1", slow[0].port, "gopher")
    finally:
        close_agent(cluster)
    assert client.banner("127.0.0.1", slow[1].port, "smtp")["ok"]  # a closed agent starts again
    assert cluster.pipes == 2
    close_agent(cluster)
