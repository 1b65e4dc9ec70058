"""How the lab names a process for good: its pid with its start time, None once dead.

The lab driver caches each node's init by (pid, start time) instead of scanning all
of /proc for every command, so a dead init or a zombie one must never pass for the init
it had found (a reused pid has another start time). Plain child processes of this test
stand in for it.
"""

from __future__ import annotations

import os
import signal
import subprocess

from mailring.drivers.lab.procs import start_time


def test_a_live_process_keeps_its_start_time_and_a_zombie_or_reaped_one_has_none() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        first = start_time(child.pid)
        assert first is not None and first.isdigit(), first
        assert start_time(child.pid) == first
        os.kill(child.pid, signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
        assert start_time(child.pid) is None, "a zombie counted as alive"
    finally:
        child.kill()
        child.wait()
    assert start_time(child.pid) is None


def test_a_remembered_init_is_known_while_it_lives(monkeypatch) -> None:
    """Inits remembers the process of a namespace whose pid there is 1, and forgets it once it
    has died (a crash), so the driver looks for the next boot's init again."""
    from mailring.drivers.lab import procs

    child = subprocess.Popen(["sleep", "30"])
    other = subprocess.Popen(["sleep", "30"])
    try:
        monkeypatch.setattr(procs, "nspid", lambda pid: 1 if pid == child.pid else 7)
        inits = procs.Inits()
        assert inits.known("mail01") is None
        assert inits.remember("mail01", [other.pid, child.pid]) == child.pid
        assert inits.known("mail01") == child.pid
        assert inits.remember("mail02", [other.pid]) is None and inits.known("mail02") is None
        child.kill()
        child.wait()
        assert inits.known("mail01") is None, "a dead init still known"
    finally:
        for p in (child, other):
            p.kill()
            p.wait()


def test_a_process_dying_while_its_status_is_read_has_no_nspid(monkeypatch) -> None:
    """/proc/<pid>/status of a process being torn down answers ESRCH (a lab's status() read
    it while test_interrupts took a lab down, and the error ended the test)."""
    from pathlib import Path

    from mailring.drivers.lab import procs

    def dying(self, *args, **kwargs):
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(Path, "read_text", dying)
    assert procs.nspid(os.getpid()) is None
    assert procs.Inits().remember("mail01", [os.getpid()]) is None


def test_processes_scan_proc_only_for_nodes_neither_known_nor_recorded(monkeypatch) -> None:
    """A known init answers for its node, a node with a recorded fault (a crash) is taken from
    the record if its namespace exists, and only the rest cost a /proc scan."""
    from mailring.drivers.lab import netns, procs

    child = subprocess.Popen(["sleep", "30"])
    scanned: list[list[str]] = []

    def scan(names):
        names = list(names)
        scanned.append(names)
        return {ns: [4242] for ns in names if ns != "ns-gone"}

    try:
        monkeypatch.setattr(procs, "nspid", lambda pid: 1)
        monkeypatch.setattr(netns, "pids_by_namespace", scan)
        monkeypatch.setattr(netns, "inode_link", lambda ns: None if ns == "ns-gone" else f"net:[{ns}]")
        inits = procs.Inits()
        inits.remember("mail01", [child.pid])
        spaces = {"mail01": "ns1", "mail02": "ns2", "mail03": "ns3", "mail04": "ns-gone"}
        pids = inits.processes(spaces, recorded=["mail02", "mail04"])
        assert pids == {"ns1": [child.pid], "ns2": [], "ns3": [4242]}, pids
        assert scanned == [["ns3"]], "only the node neither known nor recorded is looked for"
    finally:
        child.kill()
        child.wait()
