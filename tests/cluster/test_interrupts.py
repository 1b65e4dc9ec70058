"""Interrupted runs leave nothing behind, and nothing of another lab is touched.

`mailring up` of a lab with its own name is stopped at three moments of its
bring-up: early (its first namespace exists), mid (every namespace exists and
node inits run) and late (CARP has elected owners, `up` is still waiting for
the services). The moments are read from the lab's own state as it grows,
not from sleeps. SIGTERM and SIGINT must tear the lab down on the way out;
after SIGKILL the next `mailring down` (or `up`) of the same name must remove
every namespace, /run/netns mount, process and build folder the killed run
left. A scenario stopped by SIGTERM while its crash is in force heals the
crash and takes the lab it brought up down. All the while the session's own
lab runs beside them: its inits stay the same processes and every service on
every VIP keeps answering from the node the model expects.

The interrupted labs are rings of two mail servers and the client, generated
from the session's topology (``mailring.topology.generate``): every part that
a bring-up makes and a teardown removes is there, at about half the CPU of the
five-server ring, on a machine the session's own labs keep busy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mailring.checks import CheckError
from mailring.cluster import open_cluster
from mailring.interrupts import sigint_default
from mailring.polling.sweep import sweep
from mailring.polling.wait import NotYet, eventually
from mailring.topology import load
from mailring.topology.generate import write_ring

pytestmark = [pytest.mark.lab_only("reads the lab's namespaces, mounts and processes on this host"),
              pytest.mark.long]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"  # build/<lab>/, as the README says the lab names it
NETNS_DIR = Path("/run/netns")  # where `ip netns` keeps the named namespaces
INIT = "mailring.drivers.lab.init"
MOMENT_DEADLINE_S = 90


def namespaces(lab: str) -> list[str]:
    """The lab's namespaces: ``mr-<lab>-<node>`` and ``mr-<lab>-lan`` (README), as ``ip netns
    list`` names them (the entries of /run/netns; read directly: the moment is looked for
    every 10 ms, and a process per look would load the machine the test runs on)."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(f"mr-{lab}-"))


def _started(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return None


def processes(lab: str) -> dict[int, str]:
    """pid -> start time of every process of the lab: in its namespaces (``ip netns pids``:
    its network namespace link is one of theirs), or started on its folder; one pass over /proc."""
    links = set()
    for ns in namespaces(lab):
        try:
            links.add(f"net:[{os.stat(NETNS_DIR / ns).st_ino}]")
        except FileNotFoundError:
            pass
    marker = f"/build/{lab}/".encode()
    pids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if (os.readlink(f"/proc/{entry.name}/ns/net") in links
                        or marker in Path(f"/proc/{entry.name}/cmdline").read_bytes()):
                    pids.add(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
    return {p: s for p in pids if (s := _started(p)) is not None}


def inits(lab: str) -> dict[int, str]:
    """The lab's node inits (PID 1 of each node), by host pid."""
    marker = f"/build/{lab}/".encode()
    out = {}
    for pid in processes(lab):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if INIT.encode() in cmd and marker in cmd and cmd.startswith(b"/usr/bin/python3"):
            out[pid] = _started(pid)
    return out


def leftovers(lab: str, seen: dict[int, str]) -> list[str]:
    """Everything of the lab still on this host; ``seen``: its processes when it was stopped."""
    left = [f"namespace {ns}" for ns in namespaces(lab)]
    left += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
             if f"mr-{lab}-" in line or f"/build/{lab}/" in line or line.split()[1] == str(BUILD / lab)]
    alive = {p: s for p, s in seen.items() if _started(p) == s}
    alive.update(processes(lab))
    for pid in sorted(alive):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:
            continue
        left.append(f"process {pid} ({cmd.strip()[:80]})")
    if (BUILD / lab).exists():
        left.append(f"folder {BUILD / lab}")
    return left


def mailring(*argv: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mailring.cli.main", *argv], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=sigint_default, **kw)


@pytest.fixture(scope="module")
def small(topology, tmp_path_factory):
    """The interrupted labs' topology: a ring of two mail servers made from the session's."""
    return load(write_ring(2, tmp_path_factory.mktemp("small") / "topology-small.yaml",
                           base=Path(topology.path)))


@pytest.fixture
def victim(bystander):
    """Names a lab of its own for each run (README: up to 24 characters); at teardown a lab
    so named that is still there (a failed test: the signal came too late, or missed) is
    taken down by name, so a failure leaves nothing behind either."""
    named: list[str] = []

    def name(tag: str) -> str:
        named.append(f"{bystander.lab[:12]}-{tag}{uuid.uuid4().hex[:4]}")
        return named[-1]

    yield name
    for lab in named:
        if namespaces(lab) or (BUILD / lab).exists():
            down = subprocess.run([sys.executable, "-m", "mailring.cli.main", "down", "--lab", lab],
                                  cwd=REPO, capture_output=True, text=True, timeout=180)
            assert down.returncode == 0, f"`mailring down --lab {lab}` after the test: {down.stderr}"


class Moment:
    """When to stop a bring-up, read from what the lab has made so far."""

    def __init__(self, name: str, topology, lab: str) -> None:
        self.name = name
        self.lab = lab
        self.nodes = [f"mr-{lab}-{n}" for n in topology.nodes] + [f"mr-{lab}-lan"]
        self.view = open_cluster(topology, driver="lab", lab=lab)
        self.last = "nothing yet"

    def reached(self) -> bool:
        made = namespaces(self.lab)
        self.last = f"{len(made)} of {len(self.nodes)} namespaces"
        if self.name == "early":
            return bool(made)
        if len(made) < len(self.nodes):
            return False
        if self.name == "mid":  # an init binds its control socket first thing: a file to look
            # for, not a status() that on a loaded machine can outlast the rest of `up`
            inits = [n for n in self.view.topology.nodes if self.view.names.control(n).exists()]
            self.last += f", node inits started: {inits}"
            return bool(inits)
        st = self.view.status()
        running = [n for n, s in st.nodes.items() if s.state == "up"]
        held = sorted(v for v, h in st.holders.items() if h)
        self.last += f", nodes running: {running}, VIPs held: {held}"
        return bool(held)  # late: CARP has elected, `up` still waits for the services


def frozen(proc: subprocess.Popen) -> bool:
    """SIGSTOP the bring-up and wait until it is stopped (True) or has ended (False), so it
    cannot finish between reading the moment and sending the signal."""
    os.kill(proc.pid, signal.SIGSTOP)  # the child is not reaped before poll(): its pid is its own
    info = os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
    if info is not None and info.si_code == os.CLD_STOPPED:
        os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WNOHANG)  # take the stop report
        return True
    return False


def stop_at(proc: subprocess.Popen, moment: Moment, sig: int) -> dict[int, str]:
    """Send ``sig`` to the bring-up once ``moment`` is reached; the lab's processes then.
    Each look is taken with `up` frozen (its nodes' processes run on), and polled every
    10 ms: the early moment lasts only a few of them."""
    def reached() -> None:
        if not frozen(proc):  # a verdict: eventually() does not retry it
            _, err = proc.communicate()
            raise AssertionError(f"{moment.name}: `up` ended (exit {proc.returncode}) before the moment; "
                                 f"last seen: {moment.last}; {err.strip()[-300:]}")
        try:
            if not moment.reached():
                raise NotYet(moment.last)
        except BaseException:
            os.kill(proc.pid, signal.SIGCONT)
            raise

    try:
        eventually(reached, MOMENT_DEADLINE_S, f"the {moment.name} moment of `up`", poll_s=0.01)
    except CheckError as exc:  # the deadline: "... not reached after 90 s; last seen: ..."
        proc.kill()
        pytest.fail(str(exc))
    try:  # `up` is still frozen: it can only go on into the signal
        seen = processes(moment.lab)
        cmd = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"mailring.cli.main" in cmd, f"pid {proc.pid} is not the bring-up any more: {cmd!r}"
        os.kill(proc.pid, sig)
    finally:  # never leave it stopped, also when the look fails
        os.kill(proc.pid, signal.SIGCONT)
    return seen


@pytest.fixture
def bystander(cluster, client, topology):
    """The session's lab, running beside the interrupted ones: afterwards the same node inits
    run and every service on every VIP answers from the node the model expects."""
    expected = topology.expected_owners(set())
    before = inits(cluster.lab)
    assert len(before) == len(topology.nodes), f"lab {cluster.lab}: node inits {before}"
    yield cluster
    assert inits(cluster.lab) == before, f"lab {cluster.lab}'s node inits changed"
    st = cluster.status()
    moved = {v: h for v, h in st.holders.items() if h != [expected[v]]}
    assert not moved, f"lab {cluster.lab}: VIPs not held by their owners alone: {moved}"
    problems = sweep(client, topology, expected)
    assert not problems, f"lab {cluster.lab} after the other lab's interruption: {problems[:5]}"


def _no_leftovers(lab: str, seen: dict[int, str], what: str) -> None:
    def check() -> None:
        left = leftovers(lab, seen)
        if left:
            raise NotYet("; ".join(left[:8]))

    # each look is a pass over /proc and its mounts: a few per second are enough
    eventually(check, 15, f"nothing of lab {lab} left {what}", poll_s=0.2)


CAUGHT = [("early", signal.SIGTERM), ("mid", signal.SIGINT), ("late", signal.SIGTERM)]


@pytest.mark.parametrize("moment,sig", CAUGHT, ids=[f"{m}-{s.name}" for m, s in CAUGHT])
def test_a_signal_during_up_tears_the_lab_down(victim, small, moment, sig):
    lab = victim(moment[0])
    proc = mailring("up", "--lab", lab, "--topology", small.path)
    seen = stop_at(proc, Moment(moment, small, lab), sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, f"exit {proc.returncode}: {err.strip()[-300:]}"
    assert "interrupted" in err, err
    _no_leftovers(lab, seen, f"after {sig.name} at the {moment} of `up`, without a down")


KILLED = [("early", "down"), ("mid", "up"), ("late", "down")]


@pytest.mark.parametrize("moment,cleaner", KILLED, ids=[f"{m}-then-{c}" for m, c in KILLED])
def test_after_sigkill_during_up_the_next_up_or_down_removes_what_it_left(
        victim, small, moment, cleaner):
    lab = victim(moment[0])
    proc = mailring("up", "--lab", lab, "--topology", small.path)
    seen = stop_at(proc, Moment(moment, small, lab), signal.SIGKILL)
    proc.communicate(timeout=30)
    left = leftovers(lab, seen)
    assert any(x.startswith("namespace") for x in left), f"a killed `up` left nothing to clean: {left}"
    cleanup = mailring(cleaner, "--lab", lab, "--topology", small.path)
    out, err = cleanup.communicate(timeout=180)
    assert cleanup.returncode == 0, f"`{cleaner}` after the kill: {err.strip()[-300:]}"
    if cleaner == "up":  # the new lab runs; none of the killed run's processes may
        stale = {p: s for p, s in seen.items() if _started(p) == s}
        assert not stale, f"processes of the killed run still alive after `up`: {sorted(stale)}"
        down = mailring("down", "--lab", lab)
        assert down.wait(timeout=120) == 0
    _no_leftovers(lab, seen, f"after SIGKILL at the {moment} of `up` and a `{cleaner}`")


def test_sigterm_during_a_scenario_heals_and_takes_its_lab_down(victim, small, tmp_path):
    lab = victim("s")
    scenario = REPO / "fixtures" / "scenarios" / "single-crash.yaml"  # crashes mail02
    proc = mailring("scenario", "--lab", lab, "--topology", small.path, str(scenario),
                    env={**os.environ, "MAILRING_RUNS": str(tmp_path)})
    view = open_cluster(small, driver="lab", lab=lab)

    def crashed() -> None:  # the node is down and the run has recorded its crash as done
        if proc.poll() is not None:
            raise AssertionError(f"the scenario ended (exit {proc.returncode}) before its crash")
        st = view.status() if namespaces(lab) else None
        if st is None or "crashed" not in {s.state for s in st.nodes.values()}:
            raise NotYet(f"nodes: {st and {n: s.state for n, s in st.nodes.items()}}")
        if not any('"what": "invoke"' in p.read_text() for p in tmp_path.rglob("*.jsonl")):
            raise NotYet("the run has not recorded its crash yet")

    eventually(crashed, MOMENT_DEADLINE_S, f"scenario single-crash crashes a node of lab {lab}")
    seen = processes(lab)
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, f"exit {proc.returncode}: {err.strip()[-300:]}"
    heals = [p for p in tmp_path.rglob("*.jsonl") if '"what": "heal"' in p.read_text()]
    assert heals, f"no heal recorded under {tmp_path}: {sorted(tmp_path.rglob('*'))[:10]}"
    _no_leftovers(lab, seen, "after SIGTERM during its scenario")
