"""VagrantCluster: the Cluster interface over FreeBSD VMs made by the top-level Vagrantfile.

Lifecycle (up, boot, snapshots, destroy) goes through python-vagrant, imported
inside the methods so this module imports without it. Commands run over one
reused paramiko connection per node (``ssh.Ssh``), as root via sudo. A crash is
the provider's hard power-off; isolation downs the cluster NIC while SSH stays
on the management NIC. Faults and the provisioned snapshot's bundle digest are
recorded in ``build/<lab>/vagrant-state.json`` so separate CLI calls see them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mailring.cluster import (
    DEFAULT_LAB,
    Cluster,
    NodeStatus,
    Result,
    Running,
    Status,
    TransportError,
)
from mailring.drivers.vagrant import ops, ready
from mailring.drivers.vagrant.machines import bundles_dir, lab_root, machines_path, render_lab
from mailring.drivers.vagrant.parse import (
    MachineStatus,
    VagrantOutputError,
    carp_masters,
    interface_of,
    parse_ifconfig,
    parse_machine_status,
    parse_ssh_config,
)
from mailring.drivers.vagrant.ssh import Ssh
from mailring.drivers.vagrant.state import LabState
from mailring.errors import InputError
from mailring.render.engine import load_manifest

ROOT = Path(__file__).resolve().parents[3]  # the folder with the Vagrantfile
PROBE = ROOT / "mailring" / "probe.py"
READY_S = 600.0


class VagrantCluster(Cluster):
    NAME = "vagrant"
    FLAVOUR = "freebsd"

    def __init__(self, topology, lab: str = "mailring") -> None:
        super().__init__(topology, lab)
        self.paths = load_manifest("freebsd").paths
        self.haproxy_socket = self.paths["haproxy_socket"]
        self.root = Path(os.environ.get("MAILRING_VAGRANT_ROOT", ROOT))
        self.json_path = machines_path(lab)
        self.state = LabState(lab_root(lab) / "vagrant-state.json")
        self.snapshot = f"mailring-{lab}"
        self._ssh = Ssh(self._ssh_conf)
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

    def _machines(self) -> dict[str, MachineStatus]:
        if not self.json_path.exists():
            render_lab(self.topology, self.lab)
        try:
            res = subprocess.run(["vagrant", "status", "--machine-readable"], cwd=self.root,
                                 env=self._env(), capture_output=True, text=True, timeout=120)
        except FileNotFoundError as exc:
            raise InputError("vagrant is not installed (see docs/vagrant.md)") from exc
        except subprocess.TimeoutExpired as exc:
            raise TransportError("vagrant status did not answer in 120 s") from exc
        try:
            machines = parse_machine_status(res.stdout)
        except VagrantOutputError as exc:
            raise InputError(f"vagrant status: {exc}") from exc
        if res.returncode != 0 and not machines:
            tail = " | ".join(res.stderr.strip().splitlines()[-3:])
            raise TransportError(f"vagrant status failed (exit {res.returncode}): {tail}")
        return machines

    def _ssh_conf(self, node: str) -> dict[str, str]:
        hosts = parse_ssh_config(self._vagrant().ssh_config(vm_name=node))
        if node not in hosts:
            raise TransportError(f"vagrant ssh-config printed no Host {node}")
        return hosts[node]

    def faults(self) -> dict[str, str]:
        return self.state.faults()

    def record_fault(self, node: str, fault: str | None) -> None:
        self.state.set_fault(node, fault)

    # -- lifecycle ------------------------------------------------------------
    def up(self) -> None:
        """Create, provision and start every VM (the client first), then save a snapshot."""
        render_lab(self.topology, self.lab)
        v = self._vagrant()
        before = self._machines()
        client = self.topology.client.name
        if before.get(client, MachineStatus(client, "not_created", None)).state != "running":
            self._call(f"up {client}", v.up, vm_name=client)  # it exports the mail store
        self._call("up", v.up)  # Vagrant provisions the machines it creates now
        for name, st in before.items():
            if st.state != "not_created":  # existing VMs: apply the current bundles (idempotent)
                self._call(f"provision {name}", v.provision, vm_name=name)
        self._ssh.forget()
        self._ifaces.clear()
        self.state.update(faults={})
        self._install_probe()
        self.wait_ready()
        self._save_snapshot(v)

    def _install_probe(self) -> None:
        dest = self.paths["probe"]
        res = self.run(self.topology.client.name,
                       ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod 0755 "$1"',
                        "sh", dest], input=PROBE.read_text())
        if not res.ok:
            raise TransportError(f"could not install the probe on the client: {res}")

    def _save_snapshot(self, v: Any) -> None:
        digest = ops.bundle_digest(bundles_dir(self.lab))
        have = any(self.snapshot in line for line in v.snapshot_list())
        if have and self.state.load().get("snapshot_digest") == digest:
            return
        if have:
            self._call("snapshot delete", v.snapshot_delete, self.snapshot)
        self._call("snapshot save", v.snapshot_save, self.snapshot)
        self.state.update(snapshot_digest=digest)

    def reset(self) -> None:
        """Restore every VM to the snapshot taken after provisioning (before destructive tests)."""
        v = self._vagrant()
        if not any(self.snapshot in line for line in v.snapshot_list()):
            raise InputError(f"no snapshot {self.snapshot}; run: mailring up --driver vagrant "
                             f"--lab {self.lab}")
        self._ssh.forget()
        self._call("snapshot restore", v.snapshot_restore, self.snapshot)
        self._ssh.forget()
        self._ifaces.clear()
        self.state.update(faults={})
        self.wait_ready()

    def down(self) -> None:
        """Destroy every VM of this lab (safe to call twice) and forget its faults."""
        self._ssh.forget()
        v = self._vagrant()
        self._call("destroy", v.destroy)
        self.state.clear()

    def wait_ready(self, nodes: list[str] | None = None, deadline_s: float = READY_S) -> None:
        """Block until the nodes' daemons run and every VIP is where the model says."""
        faults = self.faults()
        nodes = nodes or [n for n in self.topology.nodes if n not in faults]
        ready.wait_ready(self, nodes, self.carp_failed(), deadline_s)

    # -- status ---------------------------------------------------------------
    def status(self) -> Status:
        machines = self._machines()
        faults = self.faults()
        vhids = {v.vhid: str(v.address) for v in self.topology.vips}
        nodes: dict[str, NodeStatus] = {}
        holders: dict[str, list[str]] = {str(v.address): [] for v in self.topology.vips}
        for node in self.topology.nodes.values():
            running = machines.get(node.name) and machines[node.name].state == "running"
            state = "up" if running else "down"
            if not running and faults.get(node.name) == "crashed":
                state = "crashed"
            if running:
                try:
                    text = self.run(node.name, ["ifconfig"], timeout=20).stdout
                except TransportError:
                    text, state = "", "down"
                iface = interface_of(parse_ifconfig(text), str(node.address))
                if (iface is not None and not iface.up) or faults.get(node.name) == "isolated":
                    state = "isolated"
                if iface is not None:
                    for vip in carp_masters(iface, vhids):
                        holders[vip].append(node.name)
            nodes[node.name] = NodeStatus(node.name, state, str(node.address))
        return Status(nodes=nodes, holders=holders, faults=faults)

    # -- commands -------------------------------------------------------------
    def run(self, node: str, argv: list[str], timeout: float = 60.0,
            input: str | None = None) -> Result:
        self.check_node(node)
        return self._ssh.run(node, argv, timeout=timeout, input=input)

    def start(self, node: str, argv: list[str]) -> Running:
        self.check_node(node)
        return self._ssh.start(node, argv)

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
            ifaces = parse_ifconfig(self.run(node, ["ifconfig"], timeout=20).stdout)
            iface = interface_of(ifaces, str(self.topology.nodes[node].address))
            if iface is None:
                address = self.topology.nodes[node].address
                raise TransportError(f"{node}: no interface holds {address}")
            self._ifaces[node] = iface.name
        return self._ifaces[node]

    def crash(self, node: str) -> None:
        self.check_node(node)
        st = self._machines().get(node)
        if st is None or st.state != "running":
            raise InputError(f"{node} is not running ({st.state if st else 'unknown'}); "
                             "nothing to crash")
        id_file = ops.machine_id_file(self.dotfile, node, st.provider or "")
        try:
            machine_id = id_file.read_text().strip()
        except FileNotFoundError as exc:
            raise TransportError(f"{node}: no machine id at {id_file}") from exc
        argv = ops.crash_argv(st.provider or "", machine_id,
                              os.environ.get("LIBVIRT_DEFAULT_URI", "qemu:///system"))
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            failed = Result(argv, res.returncode, res.stdout, res.stderr)
            raise TransportError(f"{node}: power-off failed: {failed}")
        self._ssh.forget(node)
        self.record_fault(node, "crashed")

    def boot(self, node: str) -> None:
        self.check_node(node)
        st = self._machines().get(node)
        if st is not None and st.state == "running":
            raise InputError(f"{node} is running; crash it before booting it")
        v = self._vagrant()
        self._call(f"up {node}", v.up, vm_name=node, provision=False)
        self._ssh.forget(node)
        self._ifaces.pop(node, None)
        self.record_fault(node, None)
        self.wait_ready(nodes=[node])

    def _service(self, node: str, name: str, start: bool) -> None:
        self.check_node(node)
        self.check_daemon(name)
        ops.check_role(node, self.topology.nodes[node].role, name)
        for argv in ops.service_argvs(name, start):
            if argv[0] == "service":  # skip scripts already in the wanted state
                running = self.run(node, ops.status_argv(argv[1])).ok
                if running == start:
                    continue
            res = self.run(node, argv)
            if not res.ok:
                raise RuntimeError(f"{node}: {res}")

    def stop_daemon(self, node: str, name: str) -> None:
        self._service(node, name, start=False)

    def start_daemon(self, node: str, name: str) -> None:
        self._service(node, name, start=True)

    def isolate(self, node: str) -> None:
        self.check_node(node)
        res = self.run(node, ["ifconfig", self._cluster_if(node), "down"])
        if not res.ok:
            raise RuntimeError(f"{node}: {res}")
        self.record_fault(node, "isolated")

    def rejoin(self, node: str) -> None:
        self.check_node(node)
        if self.faults().get(node) != "isolated":
            raise InputError(f"{node} is not isolated; nothing to heal")
        res = self.run(node, ["ifconfig", self._cluster_if(node), "up"])
        if not res.ok:
            raise RuntimeError(f"{node}: {res}")
        self.record_fault(node, None)

    def log_text(self, node: str, service: str) -> str:
        self.check_node(node)
        files = ops.log_paths(service, self.paths["log"])
        res = self.run(node, ["sh", "-c", 'for f; do [ -r "$f" ] && cat "$f"; done; true', "sh",
                              *files])
        return ops.carp_lines(res.stdout) if service == "carp" else res.stdout
