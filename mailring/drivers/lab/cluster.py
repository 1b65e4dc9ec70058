"""LabCluster: the Cluster interface over Linux namespaces on this host.

Each node is a network namespace on the lab's bridge plus, per boot, mount,
PID and UTS namespaces whose PID 1 is ``mailring.drivers.lab.init``. A
crash kills that PID 1 (every daemon dies at once), drops the node's VIPs and
takes its link down; a boot starts a new PID 1 over the same disk layers.
Faults are recorded in ``build/<lab>/lab.json`` so separate CLI calls see them; that folder is
the lab's own tmpfs (``labfs``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from mailring.agent import close_agent
from mailring.cluster import Cluster, NodeStatus, Pipe, Result, Running, Status, TransportError
from mailring.drivers.lab import control, labfs, netns, preflight, procs
from mailring.drivers.lab.names import REPO, LabNames
from mailring.drivers.lab.ready import wait_owners, wait_ready, wait_services
from mailring.drivers.lab.record import LabRecord
from mailring.errors import InputError
from mailring.interrupts import shielded
from mailring.render import render
from mailring.render.context import MAIL_UID, backends
from mailring.render.engine import load_manifest
from mailring.speakers import SPEAKERS, Speaker, lab_speaker

PROBE = REPO / "mailring" / "probe.py"
# Nodes run Debian's own python3 (as a VM runs its own), never the caller's venv,
# which a node's private /tmp may hide.
NODE_PYTHON = "/usr/bin/python3"
HAPROXY_API_TIMEOUT_S = 10.0


class LabCluster(Cluster):
    NAME = "lab"
    HEALS_IN_PARALLEL = True

    def __init__(self, topology, lab: str = "mailring") -> None:
        super().__init__(topology, lab)
        self.names = LabNames(lab)
        manifest = load_manifest("debian")
        self.haproxy_socket = manifest.paths["haproxy_socket"]
        self.filter_rules = manifest.paths["filter"].lstrip("/")  # in a node's bundle
        self._default_speaker = manifest.carp_speaker
        # each node's init as last found: finding it scans all of /proc, and every command,
        # runtime-API call and poll of a test needs it
        self._inits = procs.Inits()

    @property
    def record(self) -> LabRecord:
        """build/<lab>/lab.json, where ``names`` puts it."""
        return LabRecord(self.names.state_file)

    @property
    def carp_speaker(self) -> Speaker:
        """The running lab's speaker (recorded at up), else the one up() would start."""
        recorded = self.record.read().get("carp_speaker")
        return SPEAKERS[recorded] if recorded in SPEAKERS else lab_speaker(self._default_speaker)

    # -- state: build/<lab>/lab.json ------------------------------------------
    def faults(self) -> dict[str, str]:
        return self.record.faults()

    def brought_up_from(self) -> tuple[str, str | None] | None:
        return self.record.brought_up_from()

    def record_fault(self, node: str, fault: str | None) -> None:
        self.record.set_fault(node, fault)

    # -- lifecycle ------------------------------------------------------------
    def up(self) -> None:
        speaker = lab_speaker(self._default_speaker)
        preflight.check(speaker.name)
        self.down()  # a stale lab of this name, left by a killed run
        self.up_begin()
        try:
            self._create(speaker)
            wait_ready(self, deadline_s=30.0 + 2 * len(self.topology.nodes))
        except BaseException:
            with shielded():  # a second Ctrl-C must not leave half a lab
                self._save_failure_logs()
                self.down()
            raise
        finally:
            self.up_end()

    def _save_failure_logs(self) -> None:
        """Every node's logs (daemons' and its init's) into ``failure_logs``, before down()."""
        if self.failure_logs is None:
            return
        from mailring.runs.records import save_logs

        save_logs(self, self.failure_logs)
        for node in self.topology.nodes:
            init_log = self.names.disk(node) / "init.log"
            if init_log.exists():
                (self.failure_logs / node).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(init_log, self.failure_logs / node / "init.log")

    def _create(self, speaker: Speaker) -> None:
        names = self.names
        labfs.mount(names)
        # record first, so an interrupted up() is found by down() by name
        self.record.write({"lab": self.lab, "topology": self.topology.path,
                           "fingerprint": self.topology.fingerprint(), "carp_speaker": speaker.name,
                           "namespaces": names.namespaces(self.topology.nodes), "faults": {}})
        names.store.mkdir(parents=True, exist_ok=True)
        os.chown(names.store, MAIL_UID, MAIL_UID)
        netns.make_lan(names.lan)
        prefix = self.topology.network.prefixlen
        # ucarp: backups wait until owners hold their VIPs; keepalived: owners (priority 255,
        # state MASTER) take their VIPs at once and backups hear them, so everything starts
        hold = ("carp-backup",) if speaker.name == "ucarp" else ()

        def start(name: str, _bundle: Path) -> None:  # each node boots as soon as it is rendered
            node = self.topology.nodes[name]
            netns.make_node(names.lan, names.netns(name), names.port(name), str(node.address), prefix,
                            self._peers(name))
            rules = names.bundles / name / self.filter_rules
            if rules.exists():  # mail nodes: before any daemon listens
                netns.load_filter(names.netns(name), str(rules))
            if node.role == "client":
                netns.take_gratuitous_arp(names.netns(name))
            self._start_init(name, hold=hold)
            self.up_step(name, "started", "init and its daemons launched")

        render(self.topology, "debian", names.bundles, carp_speaker=speaker.name, on_node=start)
        if speaker.name == "ucarp":
            self._start_backups_after_owners()

    def _peers(self, node: str) -> list[str]:
        """The other nodes' own addresses: permanent neighbours of ``node`` (see netns)."""
        return [str(n.address) for name, n in self.topology.nodes.items() if name != node]

    def _start_backups_after_owners(self) -> None:
        """Start the backup ucarps once every VIP is held by its owner.

        ucarp reads adverts through libpcap, which hands them over up to about a
        second late; backups started with their owners time out (3 x advbase +
        skew/256) before they hear the owner's first advert, win the first
        election and leave preemption seconds of flapping to sort out. Started
        after the owners, they hear adverts before their timers run out.
        """
        mail = [n.name for n in self.topology.mail_nodes]
        wait_owners(self, deadline_s=10 * self.topology.advbase + 5)
        threads = [threading.Thread(target=control.call,
                                    args=(self.names.control(n), "start", "carp-backup"))
                   for n in mail]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _start_init(self, node: str, hold: tuple[str, ...] = ()) -> None:
        """Start a node's init: its daemons, HAProxy once they listen (its first check of a
        daemon not listening yet would mark the server DOWN until ``rise`` checks pass), and
        the ``hold`` services only when asked."""
        names = self.names
        disk = names.disk(node)
        disk.mkdir(parents=True, exist_ok=True)
        mail = self.topology.nodes[node].role == "mail"
        store = names.store if mail else names.disk(node) / "none"
        options = ["--hold", ",".join(hold)] if hold else []
        if mail:
            ports = sorted({b.port for b in backends(self.topology)})
            address = self.topology.nodes[node].address  # where HAProxy checks them
            options += ["--after-listening", "haproxy=" + ",".join(f"{address}:{p}" for p in ports)]
        log = open(disk / "init.log", "ab")  # noqa: SIM115
        subprocess.Popen(
            ["ip", "netns", "exec", names.netns(node), "unshare", "--mount", "--pid", "--uts",
             "--fork", "--mount-proc", "--propagation", "private", NODE_PYTHON, "-m",
             "mailring.drivers.lab.init", str(disk), str(names.bundles / node), str(store),
             str(names.control(node)), *options],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"},
        )
        log.close()

    def down(self) -> None:
        """Kill this lab's processes, delete its namespaces and folders; collect errors, keep going.
        Ctrl-C and SIGTERM wait until it is done (also a lab left by a SIGKILLed run goes)."""
        with shielded():
            close_agent(self)  # the probe agent on the client goes first
            self._down()

    def _down(self) -> None:
        state = self.record.read()
        errors = []
        mine = self.names.namespaces(self.topology.nodes, state.get("namespaces", []))
        spaces = [ns for ns in mine if ns in netns.existing()]
        procs.kill_all(spaces)
        for ns in spaces:
            err = netns.remove(ns)
            if err:
                errors.append(f"{ns}: {err}")
        if self.names.root.exists():
            if err := labfs.unmount(self.names):
                errors.append(err)
            shutil.rmtree(self.names.root, ignore_errors=True)
        if errors:
            raise RuntimeError("lab teardown left: " + "; ".join(errors))

    # -- commands -------------------------------------------------------------
    def _init_pid(self, node: str) -> int:
        self.check_node(node)
        if (pid := self._inits.known(node)) is not None:
            return pid
        crashed = self.faults().get(node) == "crashed"  # no process left: no /proc scan to tell
        if not crashed and (pid := self._inits.remember(node, procs.netns_pids(self.names.netns(node)))):
            return pid
        if self.names.netns(node) not in netns.existing():
            raise TransportError(f"lab {self.lab} is not up (no namespace {self.names.netns(node)}); "
                                 f"run: mailring up --lab {self.lab}")
        state = self.faults().get(node, "down")
        raise TransportError(f"{node} is not running ({state}); boot it: mailring boot {node}")

    def _nsenter(self, node: str, argv: list[str]) -> list[str]:
        return procs.nsenter(self._init_pid(node), argv)

    def run(self, node: str, argv: list[str], timeout: float = 60.0,
            input: str | None = None) -> Result:
        cmd = self._nsenter(node, argv)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"{node}: {argv[0]} did not finish in {timeout} s") from exc
        except OSError as exc:
            raise TransportError(f"{node}: cannot run {argv[0]}: {exc}") from exc
        return Result(list(argv), res.returncode, res.stdout, res.stderr)

    def exec_interactive(self, node: str, argv: list[str]) -> int:
        try:
            return subprocess.call(self._nsenter(node, argv))
        except OSError as exc:
            raise TransportError(f"{node}: cannot run {argv[0]}: {exc}") from exc

    def start(self, node: str, argv: list[str]) -> Running:
        return procs.LabRunning(argv, self._nsenter(node, argv))

    def open_pipe(self, node: str, argv: list[str]) -> Pipe:
        return procs.ProcessPipe(argv, self._nsenter(node, argv))

    def probe_argv(self) -> list[str]:
        return [NODE_PYTHON, str(PROBE)]

    def haproxy_command(self, node: str, command: str) -> str:
        """The runtime API over its Unix socket, reached through the node's root
        (/proc/<its PID 1>/root): a control channel like the init's, no network, no process."""
        return control.haproxy(f"/proc/{self._init_pid(node)}/root{self.haproxy_socket}", command,
                               f"HAProxy runtime API on {node} ({self.haproxy_socket})",
                               HAPROXY_API_TIMEOUT_S)

    # -- faults ---------------------------------------------------------------
    def crash(self, node: str) -> None:
        self.check_node(node)
        ns = self.names.netns(node)
        pid = self._init_pid(node)
        os.kill(pid, signal.SIGKILL)  # the kernel kills the whole PID namespace
        self.record_fault(node, "crashed")
        netns.link(ns, up=False)  # a dead NIC: no ARP reply, no RST
        netns.drop_addresses(ns, keep=str(self.topology.nodes[node].address))
        procs.wait_empty(ns)

    def boot(self, node: str) -> None:
        self.check_node(node)
        if procs.netns_pids(self.names.netns(node)):
            raise InputError(f"{node} is running; crash it before booting it")
        netns.link(self.names.netns(node), up=True, peers=self._peers(node))
        carp = ("carp", "carp-backup") if self.topology.nodes[node].role == "mail" else ()
        self._start_init(node, hold=carp)
        self.record_fault(node, None)
        deadline = time.monotonic() + 10
        while not self.names.control(node).exists() or not control.answers(self.names.control(node)):
            if time.monotonic() > deadline:
                raise TransportError(f"{node}: init did not come up; see {self.names.disk(node)}/init.log")
            time.sleep(0.02)
        if carp:  # CARP only once the node can serve (FreeBSD: net.inet.carp.allow=0 until ready)
            wait_services(self, node)
            for group in carp:
                self._start_carp(node, group)

    def _services(self, node: str, op: str, service: str | None = None) -> dict:
        self._init_pid(node)
        return control.call(self.names.control(node), op, service)

    def _each(self, node: str, op: str, groups: list[str]) -> None:
        """``op`` on several of the node's init services at once (``control.call_each``)."""
        self._init_pid(node)
        control.call_each(self.names.control(node), op, groups)

    def _groups(self, node: str, name: str) -> list[str]:
        """The init's services behind one daemon name (carp = owned + backup ucarps)."""
        self.check_daemon(name)
        groups = [g for g in (name, f"{name}-backup") if g in self.service_states(node)]
        if not groups:
            raise InputError(f"{node} runs no {name}; it runs: {', '.join(self.service_states(node))}")
        return groups

    def stop_daemon(self, node: str, name: str) -> None:
        self._each(node, "stop", self._groups(node, name))

    def start_daemon(self, node: str, name: str) -> None:
        for group in self._groups(node, name):
            if name == "carp":
                self._start_carp(node, group)
            else:
                self._services(node, "start", group)

    def _start_carp(self, node: str, group: str) -> None:
        """Start one of the node's CARP groups. Before keepalived takes a node's own VIPs back
        (preemption) they are staged: held and announced (``netns.stage_vips``) until it holds
        them, within a few advert intervals."""
        self._init_pid(node)
        staged: list[str] = []
        ns = self.names.netns(node)
        if group == "carp" and self.carp_speaker.name == "keepalived" and self.topology.preempt:
            staged = netns.stage_vips(ns, [str(v.address) for v in self.topology.vips_owned_by(node)])
        try:
            control.call(self.names.control(node), "start", group)
        finally:
            missing = netns.unstage_vips(ns, staged, deadline_s=3 * self.topology.advbase) if staged else []
        if missing:
            raise TransportError(f"{node}: keepalived did not take its own VIPs {', '.join(missing)} "
                                 f"within {3 * self.topology.advbase} s of starting; see "
                                 f"`mailring logs {node} carp`")

    def freeze(self, node: str, daemon: str | None = None) -> None:
        self._each(node, "pause", self._groups(node, daemon) if daemon else list(self.service_states(node)))

    def thaw(self, node: str, daemon: str | None = None) -> None:
        self._each(node, "resume", self._groups(node, daemon) if daemon else list(self.service_states(node)))

    def isolate(self, node: str) -> None:
        """Cut the node's link. As on FreeBSD, where a link going down puts its CARP vhids in
        INIT, the node lets go of every VIP while cut off (ucarp would exit on a down interface,
        so the port is cut on the bridge and the node's ucarps are stopped); otherwise it would
        make itself master of every VIP it runs and meet the real holders as a split brain when
        the link returns."""
        self.check_node(node)
        self._init_pid(node)
        netns.bridge_port(self.names.lan, self.names.port(node), forwarding=False)
        self.record_fault(node, "isolated")
        self._each(node, "stop", self._carp_groups(node))

    def rejoin(self, node: str) -> None:
        """Restore the link, then start the node's CARP again: it comes back as a backup and takes
        its own VIPs back by preemption, as a booting node does."""
        self.check_node(node)
        if self.faults().get(node) != "isolated":
            raise InputError(f"{node} is not isolated; nothing to heal")
        netns.bridge_port(self.names.lan, self.names.port(node), forwarding=True)
        self.record_fault(node, None)
        for group in self._carp_groups(node):
            self._start_carp(node, group)

    def _carp_groups(self, node: str) -> list[str]:
        if self.topology.nodes[node].role != "mail":
            return []
        return [g for g in ("carp", "carp-backup") if g in self.service_states(node)]

    def service_states(self, node: str) -> dict:
        return self._services(node, "status")

    def log_text(self, node: str, service: str) -> str:
        self.check_node(node)
        path = self.names.disk(node) / "var" / "log" / f"{service}.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- status ---------------------------------------------------------------
    def status(self) -> Status:
        faults = self.faults()
        nodes, holders = {}, {str(v.address): [] for v in self.topology.vips}
        pids = self._inits.processes({n: self.names.netns(n) for n in self.topology.nodes}, faults)
        for node in self.topology.nodes.values():
            ns = self.names.netns(node.name)
            if ns not in pids:
                state = "down"
            elif node.name in faults:
                state = faults[node.name]
            else:
                state = "up" if pids[ns] else "down"
            nodes[node.name] = NodeStatus(node.name, state, str(node.address))
            if state != "up":
                continue
            for addr in netns.local_addresses(pids[ns][0]):
                if addr in holders:
                    holders[addr].append(node.name)
        return Status(nodes=nodes, holders=holders, faults=faults)
