"""VagrantCluster: the Cluster interface over VMs made by the top-level Vagrantfile.

The topology's ``vagrant.os`` picks a guest adapter (``guests``): everything
OS-specific (flavour, service control, which VIPs a node holds, readiness,
isolation, log paths) goes through it, so this module has no OS branches.
Lifecycle (up, boot, snapshots, destroy) goes through python-vagrant, imported
inside the methods so this module imports without it. Power states come from
the provider (``power``: ``virsh domstate``), never from a ``vagrant status``
per poll; nodes are asked in parallel. Commands run over one reused paramiko
connection per node (``ssh.Ssh``), as root via sudo. A crash is the provider's
hard power-off; isolation downs the cluster NIC while SSH stays on the
management NIC. Faults and the provisioned snapshot's bundle digest are
recorded in ``build/<lab>/vagrant-state.json`` so separate CLI calls see them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mailring.agent import close_agent
from mailring.cluster import (
    DEFAULT_LAB,
    Cluster,
    NodeStatus,
    Pipe,
    Result,
    Running,
    Status,
    TransportError,
)
from mailring.drivers.vagrant import ops, power, ready
from mailring.drivers.vagrant.guests import Holdings
from mailring.drivers.vagrant.holdings import HoldingsReader
from mailring.drivers.vagrant.machines import (
    bundles_dir,
    check_topology,
    lab_root,
    machines_path,
    network_names,
    render_lab,
)
from mailring.drivers.vagrant.ssh import Ssh
from mailring.drivers.vagrant.state import LabState
from mailring.errors import InputError
from mailring.render.context import backends
from mailring.render.engine import load_manifest

ROOT = Path(__file__).resolve().parents[3]  # the folder with the Vagrantfile
PROBE = ROOT / "mailring" / "probe.py"
READY_S = 600.0
STATUS_TIMEOUT_S = 20.0
LISTEN_S = 120.0  # a started daemon binds its ports within this (`postfix start-fg` first runs
# postfix-script's check-fatal and check-warn: postconf, postsuper, find; slow on TCG)


class VagrantCluster(Cluster):
    NAME = "vagrant"
    # Emulated (TCG) guests answer a banner in tens to hundreds of ms, and seconds while a
    # neighbour boots on the same cores: the lab's 0.5 s timeout failed ~9 % of attempts on
    # VIPs that never moved, and 20 Hz on six targets loaded the client VM itself.
    # At 4 Hz, the crash test's ten targets cost the cluster 40 sessions a second (a login
    # process each): with three mail VMs already ~54 % busy, a booting VM took 260 s and a
    # target made 7 attempts where 10 are needed.
    PROBE_HZ = 2.0
    PROBE_TIMEOUT_S = 2.0
    # A sweep opens every service on every VIP at once: on the 1-vCPU client that is ~18 TLS
    # handshakes in Python at a time, which took over 2 s while a mail VM booted. After a
    # rejoin ucarp, which exited with its link, is restarted by systemd (RestartSec=1) and
    # then preempts: the old holder let go ~7 s after the link came back, past the lab's 6 s.
    SWEEP_TIMEOUT_S = 8.0
    SETTLE_S = 10.0
    # TCG guests: ucarp on the Debian VMs took a VIP over 5.52 s after the owner's last advert
    # once (bound 3.08 s + ucarp's two advbase = 5.33 s); one probe timeout more
    GUEST_LATE_S = 2.0
    # status() asks every VM over SSH (`ip -j addr` through a kept root loop; it was a session,
    # sudo and ip per read, about 2 s): a holders watch needs at least 8 samples, not the lab's 20.
    HOLDER_SAMPLES = 8

    def __init__(self, topology, lab: str = "mailring") -> None:
        super().__init__(topology, lab)
        self.guest = check_topology(topology)
        self.FLAVOUR = self.guest.os  # ucarp (debian) or kernel CARP (freebsd): mailring.faults rules
        self.paths = load_manifest(self.guest.flavour).paths
        self.haproxy_socket = self.paths["haproxy_socket"]
        self.root = Path(os.environ.get("MAILRING_VAGRANT_ROOT", ROOT))
        self.json_path = machines_path(lab)
        self.state = LabState(lab_root(lab) / "vagrant-state.json")
        self.snapshot = f"mailring-{lab}"
        self.libvirt_uri = os.environ.get("LIBVIRT_DEFAULT_URI", "qemu:///system")
        self._ssh = Ssh(self._ssh_conf)
        self._reader = HoldingsReader(
            lambda node, argv: self._ssh.open_pipe(node, argv, timeout=STATUS_TIMEOUT_S),
            self.guest.holdings_argv(), STATUS_TIMEOUT_S)
        self._ssh_confs: dict[str, dict[str, str]] = {}
        self._ifaces: dict[str, str] = {}

    # -- vagrant --------------------------------------------------------------
    @property
    def dotfile(self) -> Path:
        """Vagrant's machine records: ./.vagrant for the default lab (so a plain `vagrant ssh
        mail03` finds them), build/<lab>/.vagrant for any other lab, so labs never share VMs."""
        if self.lab != DEFAULT_LAB:
            return lab_root(self.lab) / ".vagrant"
        return self.root / os.environ.get("VAGRANT_DOTFILE_PATH", ".vagrant")

    def _env(self) -> dict[str, str]:
        return {**os.environ, "MAILRING_VAGRANT_JSON": str(self.json_path),
                "VAGRANT_DOTFILE_PATH": str(self.dotfile)}

    def _vagrant(self) -> Any:
        if not self.json_path.exists():
            render_lab(self.topology, self.lab)
        if shutil.which("vagrant") is None:
            raise InputError("vagrant is not installed; see docs/vagrant.md")
        try:
            import vagrant
        except ImportError as exc:
            raise InputError("the vagrant driver needs python-vagrant and paramiko: "
                             "pip install 'mailring[vagrant]'") from exc
        return vagrant.Vagrant(root=str(self.root), quiet_stdout=False, quiet_stderr=False,
                               env=self._env())

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        """Run one python-vagrant call; a failed vagrant command becomes a one-line error."""
        try:
            return fn(*args, **kw)
        except subprocess.CalledProcessError as exc:
            raise TransportError(f"`vagrant {what}` failed with exit {exc.returncode}; "
                                 "its output is above") from exc

    def _power(self, node: str) -> str:
        return power.power_state(self.dotfile, node, self.libvirt_uri)

    def _ssh_conf(self, node: str) -> dict[str, str]:
        """``vagrant ssh-config`` for a node (seconds of Ruby), kept until the node reboots."""
        if node not in self._ssh_confs:
            from mailring.drivers.vagrant.parse import parse_ssh_config

            text = self._call(f"ssh-config {node}", self._vagrant().ssh_config, vm_name=node)
            hosts = parse_ssh_config(text)
            if node not in hosts:
                raise TransportError(f"vagrant ssh-config printed no Host {node}")
            self._ssh_confs[node] = hosts[node]
        return self._ssh_confs[node]

    def _forget(self, node: str | None = None) -> None:
        """Drop what was learnt about a node's connection (all nodes when None)."""
        self._reader.forget(node)  # its loop ends while the connection is still there
        self._ssh.forget(node)
        for cache in (self._ssh_confs, self._ifaces):
            if node is None:
                cache.clear()
            else:
                cache.pop(node, None)

    def faults(self) -> dict[str, str]:
        return self.state.faults()

    def record_fault(self, node: str, fault: str | None) -> None:
        self.state.set_fault(node, fault)

    def brought_up_from(self) -> tuple[str, str | None] | None:
        state = self.state.load()
        return (state["topology"], state.get("fingerprint")) if "topology" in state else None

    def _record_topology(self) -> None:
        """Which topology the VMs get, before any is made: scenario runs refuse another."""
        self.state.update(topology=str(self.topology.path), fingerprint=self.topology.fingerprint())

    def _check_networks(self) -> None:
        """Refuse when another lab's VM networks are defined in this libvirt, up or not: the
        labs' cluster and management networks would share subnets (two xdist workers, two lab
        names). vagrant-libvirt takes an existing network of the same subnet for its own, so
        the VMs would ask for a network that is not there, and its destroy removes the other's."""
        res = subprocess.run(["virsh", "-q", "-c", self.libvirt_uri, "net-list", "--all", "--name"],
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            return  # not libvirt (VirtualBox), or libvirtd not up yet: vagrant reports that
        mine = set(network_names(self.lab).values())
        others = [n for n in res.stdout.split() if n.startswith("mr-") and n not in mine]
        if others:
            labs = sorted({n.removeprefix("mr-").removesuffix("-mgmt") for n in others})
            raise InputError(f"VM networks of another lab are defined ({', '.join(others)}); VM labs share "
                             f"the topology's {self.topology.network} and the management network, so "
                             "run one VM lab at a time (no xdist workers with --driver vagrant): take it "
                             f"down with `mailring down --driver vagrant --lab {labs[0]}`")

    # -- lifecycle ------------------------------------------------------------
    def up(self) -> None:
        """Create, provision and start every VM (the client first), then save a snapshot."""
        render_lab(self.topology, self.lab)
        self._check_networks()
        self._record_topology()
        v = self._vagrant()
        t0 = time.monotonic()
        self.up_begin()
        try:
            before = {n: self._power(n) for n in self.topology.nodes}
            client = self.topology.client.name
            if before[client] != "running":
                self._call(f"up {client}", v.up, vm_name=client)  # it exports the mail store
                self.up_step(client, "started", "first: it exports the mail store")
            self._call("up", v.up)  # Vagrant provisions the machines it creates now
            for name, st in before.items():
                self.up_step(name, "started", "was running" if st == "running" else "")
                if st == "not_created":
                    self.up_step(name, "provisioned", "created and provisioned by vagrant up")
            for name, st in before.items():
                if st != "not_created":  # existing VMs: apply the current bundles (idempotent)
                    self._call(f"provision {name}", v.provision, vm_name=name)
                    self.up_step(name, "provisioned", "current bundles applied")
            self._forget()
            self.state.update(faults={})
            self._install_probe()
            self.wait_ready()
        finally:
            self.up_end()
        if self._save_snapshot(v):
            self._settle("snapshot save")
        _took("up in all", t0)

    def _install_probe(self) -> None:
        dest = self.paths["probe"]
        res = self.run(self.topology.client.name,
                       ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod 0755 "$1"',
                        "sh", dest], input=PROBE.read_text())
        if not res.ok:
            raise TransportError(f"could not install the probe on the client: {res}")

    def _snapshots(self, v: Any) -> list[str]:
        return self._call("snapshot list", v.snapshot_list)

    def _save_snapshot(self, v: Any) -> bool:
        """Save the provisioned snapshot unless the current one has these bundles (True: saved)."""
        digest = ops.bundle_digest(bundles_dir(self.lab, self.guest))
        have = any(self.snapshot in line for line in self._snapshots(v))
        if have and self.state.load().get("snapshot_digest") == digest:
            return False
        if have:
            self._call("snapshot delete", v.snapshot_delete, self.snapshot)
        t0 = time.monotonic()
        self._call("snapshot save", v.snapshot_save, self.snapshot)
        print(f"vagrant: snapshot {self.snapshot} saved in {time.monotonic() - t0:.1f} s", flush=True)
        self.state.update(snapshot_digest=digest)
        return True

    def _settle(self, after: str) -> None:
        """The VMs were paused (``ready.settle_after_pause`` says what that does to CARP)."""
        t0 = time.monotonic()
        ready.settle_after_pause(self, self.guest, [n.name for n in self.topology.mail_nodes],
                                 self.carp_failed(), READY_S)
        _took(f"clocks and VIPs settled after the {after}", t0)

    def reset(self) -> None:
        """Restore every VM to the snapshot taken after provisioning (before destructive tests)."""
        v = self._vagrant()
        if not any(self.snapshot in line for line in self._snapshots(v)):
            raise InputError(f"no snapshot {self.snapshot}; run: mailring up --driver vagrant "
                             f"--lab {self.lab}")
        self._forget()
        t0 = time.monotonic()
        self._call("snapshot restore", v.snapshot_restore, self.snapshot)
        _took(f"snapshot {self.snapshot} restored", t0)
        self._forget()
        self.state.update(faults={})
        self.wait_ready()
        self._settle("snapshot restore")

    def down(self) -> None:
        """Destroy every VM of this lab (safe to call twice) and forget its faults."""
        close_agent(self)  # the probe agent on the client goes first
        self._forget()
        v = self._vagrant()
        self._call("destroy", v.destroy)
        self.state.clear()

    def wait_ready(self, nodes: list[str] | None = None, deadline_s: float = READY_S) -> None:
        """Block until the nodes' daemons run and every VIP is where the model says."""
        faults = self.faults()
        nodes = nodes or [n for n in self.topology.nodes if n not in faults]
        ready.wait_ready(self, self.guest, nodes, self.carp_failed(), deadline_s)

    # -- status ---------------------------------------------------------------
    def _holdings(self, node: str) -> Holdings | None:
        vhids = {v.vhid: str(v.address) for v in self.topology.vips}
        try:
            text = self._reader.read(node)  # one long-lived root loop per node, not a session
        except TransportError:
            return None
        return self.guest.holdings(text, str(self.topology.nodes[node].address), vhids)

    def _node_status(self, node: str, faults: dict[str, str]) -> tuple[str, Holdings | None]:
        if self._power(node) != "running":
            return ("crashed" if faults.get(node) == "crashed" else "down"), None
        held = self._holdings(node)
        if held is None:
            return "down", None
        if (held.iface is not None and not held.up) or faults.get(node) == "isolated":
            return "isolated", held
        return "up", held

    def status(self) -> Status:
        """Power states from the provider and holders from every node, asked in parallel."""
        faults = self.faults()
        names = list(self.topology.nodes)
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            states = dict(zip(names, pool.map(lambda n: self._node_status(n, faults), names),
                              strict=True))
        nodes: dict[str, NodeStatus] = {}
        holders: dict[str, list[str]] = {str(v.address): [] for v in self.topology.vips}
        for name, (state, held) in states.items():
            nodes[name] = NodeStatus(name, state, str(self.topology.nodes[name].address))
            for vip in held.vips if held else ():
                holders[vip].append(name)
        return Status(nodes=nodes, holders=holders, faults=faults)

    # -- commands -------------------------------------------------------------
    def run(self, node: str, argv: list[str], timeout: float = 60.0,
            input: str | None = None) -> Result:
        self.check_node(node)
        return self._ssh.run(node, argv, timeout=timeout, input=input)

    def start(self, node: str, argv: list[str]) -> Running:
        self.check_node(node)
        return self._ssh.start(node, argv)

    def open_pipe(self, node: str, argv: list[str]) -> Pipe:
        self.check_node(node)
        return self._ssh.open_pipe(node, argv)

    def probe_argv(self) -> list[str]:
        return ["python3", self.paths["probe"]]

    def exec_interactive(self, node: str, argv: list[str]) -> int:
        from mailring.drivers.vagrant.ssh import remote_command

        self.check_node(node)
        return subprocess.call(["vagrant", "ssh", node, "-c", remote_command(argv)],
                               cwd=self.root, env=self._env())

    # -- faults ---------------------------------------------------------------
    def _cluster_if(self, node: str) -> str:
        if node not in self._ifaces:
            held = self._holdings(node)
            if held is None or held.iface is None:
                address = self.topology.nodes[node].address
                raise TransportError(f"{node}: no interface holds {address}")
            self._ifaces[node] = held.iface
        return self._ifaces[node]

    def _provider_power(self, node: str, argv_of: Any, what: str) -> None:
        """Run the provider's power command ``argv_of(provider, machine_id, uri)`` for a node."""
        found = power.machine(self.dotfile, node)
        if found is None:
            raise InputError(f"{node} was never created; run: mailring up --driver vagrant")
        provider, machine_id = found
        argv = argv_of(provider, machine_id, self.libvirt_uri)
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            failed = Result(argv, res.returncode, res.stdout, res.stderr)
            raise TransportError(f"{node}: {what} failed: {failed}")

    def crash(self, node: str) -> None:
        self.check_node(node)
        state = self._power(node)
        if state != "running":
            raise InputError(f"{node} is not running ({state}); nothing to crash")
        self._provider_power(node, ops.crash_argv, "power-off")
        self._forget(node)
        self.record_fault(node, "crashed")

    def boot(self, node: str) -> None:
        """Power a crashed node on again over the same disk (the provider's power-on, not
        `vagrant up`), then wait until its services answer and the VIPs are back where the
        model says (the guest holds CARP until its services answer: FreeBSD
        net.inet.carp.allow, Debian the ucarp units' gate)."""
        self.check_node(node)
        if self._power(node) == "running":
            raise InputError(f"{node} is running; crash it before booting it")
        t0 = time.monotonic()
        self._provider_power(node, ops.power_on_argv, "power-on")
        self._forget(node)
        self.record_fault(node, None)
        self.wait_ready(nodes=[node])
        _took(f"boot {node} until its services answer and it holds CARP again", t0)

    def _check_daemon_on(self, node: str, name: str | None) -> str:
        """The node's role, once ``node`` (and ``name``, a daemon the role runs) are known."""
        self.check_node(node)
        role = self.topology.nodes[node].role
        if name is not None:
            self.check_daemon(name)
            ops.check_role(node, role, name)
        return role

    def _run_all(self, node: str, argvs: list[list[str]]) -> None:
        for argv in argvs:
            res = self.run(node, argv)
            if not res.ok:
                raise RuntimeError(f"{node}: {res}")

    def stop_daemon(self, node: str, name: str) -> None:
        self._check_daemon_on(node, name)
        self._run_all(node, self.guest.service_argvs(name, start=False))

    def start_daemon(self, node: str, name: str) -> None:
        """Start a daemon and return once it listens on its backend ports (a TCG guest takes
        seconds), so HAProxy's rise checks are all that is left for callers to wait for."""
        self._check_daemon_on(node, name)
        self._run_all(node, self.guest.service_argvs(name, start=True))
        address = str(self.topology.nodes[node].address)
        endpoints = {f"{address}:{b.port}" for b in backends(self.topology)
                     if b.service is b.target and b.target.daemon == name}
        if endpoints:
            ready.wait_listening(self, self.guest, node, endpoints, LISTEN_S)

    def freeze(self, node: str, daemon: str | None = None) -> None:
        """SIGSTOP the daemon's processes (None: every daemon of the node), as the guest finds them."""
        role = self._check_daemon_on(node, daemon)
        self._run_all(node, self.guest.freeze_argvs(role, daemon, stop=True))

    def thaw(self, node: str, daemon: str | None = None) -> None:
        role = self._check_daemon_on(node, daemon)
        self._run_all(node, self.guest.freeze_argvs(role, daemon, stop=False))

    def isolate(self, node: str) -> None:
        self.check_node(node)
        res = self.run(node, self.guest.link_argv(self._cluster_if(node), up=False))
        if not res.ok:
            raise RuntimeError(f"{node}: {res}")
        self.record_fault(node, "isolated")

    def rejoin(self, node: str) -> None:
        self.check_node(node)
        if self.faults().get(node) != "isolated":
            raise InputError(f"{node} is not isolated; nothing to heal")
        res = self.run(node, self.guest.link_argv(self._cluster_if(node), up=True))
        if not res.ok:
            raise RuntimeError(f"{node}: {res}")
        self.record_fault(node, None)

    def log_text(self, node: str, service: str) -> str:
        self.check_node(node)
        files = self.guest.log_paths(service, self.paths["log"])
        res = self.run(node, ["sh", "-c", 'for f; do [ -r "$f" ] && cat "$f"; done; true', "sh",
                              *files])
        return self.guest.log_filter(service, res.stdout)


def _took(what: str, since: float) -> None:
    """One timing line on stdout (the smoke's figures; pytest shows it with -rA)."""
    print(f"vagrant: {what}: {time.monotonic() - since:.1f} s", flush=True)
