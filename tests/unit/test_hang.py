"""Hanging a server on each driver: the lab freezes its nodes' daemons through its init;
the vagrant driver sends each guest OS's own commands (systemd units on Debian, rc.d
process trees on FreeBSD). The commands are checked here without a VM; FreeBSD's shell
script runs on this host against a fake ``service`` and a real process tree."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mailring import faults
from mailring.cluster import Result, driver_class
from mailring.drivers.vagrant import ops
from mailring.drivers.vagrant.cluster import VagrantCluster
from mailring.drivers.vagrant.guests.debian import ROLE_SERVICES, Debian
from mailring.drivers.vagrant.guests.freebsd import FreeBSD
from mailring.drivers.vagrant.state import LabState
from mailring.errors import InputError
from mailring.render import render
from mailring.topology import load
from tests.unit.pinned import TOPOLOGY

REPO = Path(__file__).resolve().parents[2]
VM_TOPO = load(REPO / "fixtures" / "topology-vm.yaml")  # vagrant.os: debian


def test_both_drivers_can_hang() -> None:
    assert driver_class("lab").supports("hang") and driver_class("vagrant").supports("hang")


# -- Debian: the units apply.py makes -------------------------------------------------------
def test_debian_hangs_a_daemons_units_and_every_daemon_of_a_node() -> None:
    guest = Debian()
    assert guest.freeze_argvs("mail", "postfix", stop=True) == [
        ["systemctl", "kill", "--signal=SIGSTOP", "mailring-postfix-*.service"]]
    assert guest.freeze_argvs("mail", None, stop=False) == [
        ["systemctl", "kill", "--signal=SIGCONT",
         *(f"mailring-{d}-*.service" for d in ROLE_SERVICES["mail"])]]
    assert guest.freeze_argvs("client", None, stop=True) == [
        ["systemctl", "kill", "--signal=SIGSTOP", "mailring-dns-*.service"]]


@pytest.mark.parametrize("node", ["mail01", "client01"])
def test_debian_patterns_match_every_daemon_unit_and_nothing_else(node: str, tmp_path: Path) -> None:
    """Against the units the debian-vm bundle's apply.py makes: every process unit (ucarp's
    included: a hung node's CARP hangs, as in the lab), not the gate, the packet filter or the
    clock wait (oneshots) nor a target."""
    render(VM_TOPO, "debian-vm", tmp_path)
    root = tmp_path / node
    spec = importlib.util.spec_from_file_location("mailring_apply", root / "apply.py")
    apply = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(apply)
    units = apply.units(yaml.safe_load((root / "etc/mailring/services.yaml").read_text()))
    role = VM_TOPO.nodes[node].role
    patterns = Debian().freeze_argvs(role, None, stop=True)[0][3:]
    hung = {u for u in units if any(fnmatch.fnmatch(u, p) for p in patterns)}
    oneshots = {apply.GATE_UNIT, apply.FILTER_UNIT, apply.CLOCK_UNIT}  # no process to stop
    daemons = {u for u in units if u.endswith(".service") and u not in oneshots}
    assert hung == daemons and daemons
    if role == "mail":
        assert any(u.startswith("mailring-carp-vhid") for u in hung)


# -- FreeBSD: rc.d process trees -------------------------------------------------------------
def test_freebsd_hangs_rc_scripts_and_refuses_kernel_carp() -> None:
    guest = FreeBSD()
    assert guest.freeze_argvs("mail", "postfix", stop=True) == [ops.freeze_argv(("postfix",), True)]
    assert guest.freeze_argvs("mail", None, stop=True)[0][4:] == [
        "stop", "postfix", "dovecot", "haproxy", "nginx"]
    assert guest.freeze_argvs("client", None, stop=False)[0][4:] == ["cont", "nsd", "unbound"]
    assert guest.freeze_argvs("mail", "dns", stop=True)[0][5:] == ["nsd", "unbound"]
    with pytest.raises(InputError, match="carp runs in the FreeBSD kernel"):
        guest.freeze_argvs("mail", "carp", stop=True)


def state(pid: int) -> str:
    """A process's state letter from /proc (T: stopped, S/R: running or sleeping)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_freebsd_script_stops_and_continues_a_whole_tree(tmp_path: Path) -> None:
    """The script as sent, run by this host's sh against a fake rc.d ``service`` that reports
    a real parent with two children as "postfix"; "dovecot" is not running and is left alone."""
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        tree = [parent.pid, *children(parent.pid)]
        assert len(tree) == 3
        fake = tmp_path / "service"
        running = f'echo "postfix is running as pid {parent.pid}."'
        fake.write_text('#!/bin/sh\n[ "$2" = onestatus ] || exit 3\n'
                        f'[ "$1" = postfix ] && {{ {running}; exit 0; }}\n'
                        'echo "$1 is not running."; exit 1\n')
        fake.chmod(0o755)
        env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
        res = subprocess.run(ops.freeze_argv(("postfix", "dovecot"), stop=True), env=env,
                             capture_output=True, text=True, timeout=10)
        assert res.returncode == 0, res.stderr
        assert "dovecot is not running: nothing to stop" in res.stdout
        assert [state(p) for p in tree] == ["T", "T", "T"]
        res = subprocess.run(ops.freeze_argv(("postfix",), stop=False), env=env,
                             capture_output=True, text=True, timeout=10)
        assert res.returncode == 0, res.stderr
        assert "T" not in [state(p) for p in tree]
    finally:
        os.killpg(parent.pid, 9)  # the session this test made, and only it
        parent.wait()


# -- the driver: registry, commands, recorded state ------------------------------------------
def fake_cluster(topo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[VagrantCluster, list]:
    c = VagrantCluster(topo, lab="unit")
    c.state = LabState(tmp_path / "state.json")
    calls: list[tuple[str, list[str]]] = []

    def run(node: str, argv: list[str], timeout: float = 60.0, input: str | None = None) -> Result:
        calls.append((node, argv))
        return Result(argv, 0, "", "")

    monkeypatch.setattr(c, "run", run)
    return c, calls


@pytest.mark.parametrize("topo,out", [(load(TOPOLOGY), faults.HAPROXY), (VM_TOPO, faults.CARP)],
                         ids=["freebsd", "debian"])
def test_vagrant_hang_of_a_node_follows_the_guest_os_rule(topo, out, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole hung node: FreeBSD's kernel CARP keeps its VIPs (HAProxy routes around it); a
    Debian VM's ucarp hangs with the rest and the node leaves CARP, as in the lab."""
    c, calls = fake_cluster(topo, tmp_path, monkeypatch)
    assert faults.kind("hang").out_of(c.FLAVOUR) == out
    c.apply_fault("hang", "mail02")
    assert calls == [("mail02", argv) for argv in c.guest.freeze_argvs("mail", None, stop=True)]
    assert c.faults() == {"mail02": "hung"}
    assert c.carp_failed() == ({"mail02"} if out == faults.CARP else set())
    calls.clear()
    c.undo_fault("hang", "mail02")
    assert calls == [("mail02", argv) for argv in c.guest.freeze_argvs("mail", None, stop=False)]
    assert c.faults() == {}


def test_vagrant_hang_of_one_daemon_records_no_node_fault(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    c, calls = fake_cluster(load(TOPOLOGY), tmp_path, monkeypatch)
    c.apply_fault("hang", "mail01", "postfix")
    assert calls == [("mail01", ops.freeze_argv(("postfix",), True))] and c.faults() == {}
    calls.clear()
    with pytest.raises(InputError, match="runs no dns"):
        c.apply_fault("hang", "mail01", "dns")
    with pytest.raises(InputError, match="kernel"):
        c.apply_fault("hang", "mail01", "carp")
    assert calls == []  # refused before anything ran
