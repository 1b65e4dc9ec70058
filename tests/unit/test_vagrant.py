"""The vagrant driver without a VM: parsers on recorded outputs, the driver's logic over fakes,
and the Vagrantfile under ``vagrant validate`` (skipped when vagrant is not installed).
Its SSH transport is tested in test_vagrant_ssh.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailring.cluster import Result, TransportError
from mailring.drivers.vagrant import cluster as vcluster
from mailring.drivers.vagrant import ops
from mailring.drivers.vagrant.cluster import VagrantCluster
from mailring.drivers.vagrant.machines import machine_list, render_lab
from mailring.drivers.vagrant.parse import (
    MachineStatus,
    VagrantOutputError,
    carp_masters,
    interface_of,
    parse_ifconfig,
    parse_machine_status,
    parse_ssh_config,
)
from mailring.drivers.vagrant.ssh import connect_kwargs, remote_command
from mailring.drivers.vagrant.state import LabState
from mailring.errors import InputError
from mailring.topology import load
from tests.unit.pinned import TOPOLOGY

REPO = Path(__file__).resolve().parents[1].parent
DATA = Path(__file__).parent / "data" / "vagrant"
TOPO = load(TOPOLOGY)  # the pinned copy: these tests read recorded ifconfig output
VHIDS = {v.vhid: str(v.address) for v in TOPO.vips}


def data(name: str) -> str:
    return (DATA / name).read_text()


def vips_of_vhids(*vhids: int) -> list[str]:
    return [VHIDS[v] for v in vhids]


# -- parsers ------------------------------------------------------------------
def test_ifconfig_14x_with_peer_lines() -> None:
    ifaces = parse_ifconfig(data("ifconfig-mail01-14.3-virtualbox.txt"))
    assert list(ifaces) == ["em0", "em1", "lo0"]
    em1 = interface_of(ifaces, str(TOPO.node("mail01").address))
    assert em1 is not None and em1.name == "em1" and em1.up
    assert interface_of(ifaces, VHIDS[1]) is None  # a CARP alias is not the node's address
    assert sorted(em1.carp) == sorted(VHIDS)
    assert em1.carp[1].state == "MASTER" and em1.carp[3].advskew == 20
    assert all(vhid is not None for addr, vhid in em1.inet if addr in VHIDS.values())
    assert carp_masters(em1, VHIDS) == vips_of_vhids(1, 2)
    assert not ifaces["em0"].carp


def test_ifconfig_13x_libvirt_without_peer_lines() -> None:
    ifaces = parse_ifconfig(data("ifconfig-mail03-13.2-libvirt.txt"))
    vt = interface_of(ifaces, str(TOPO.node("mail03").address))
    assert vt is not None and vt.name == "vtnet1"
    assert carp_masters(vt, VHIDS) == vips_of_vhids(4, 5, 6)


def test_ifconfig_of_an_isolated_node_holds_nothing() -> None:
    ifaces = parse_ifconfig(data("ifconfig-mail04-isolated-14.3.txt"))
    em1 = interface_of(ifaces, str(TOPO.node("mail04").address))
    assert em1 is not None and not em1.up
    assert {st.state for st in em1.carp.values()} == {"INIT"}
    assert carp_masters(em1, VHIDS) == []


def test_machine_status_recorded_from_vagrant_here() -> None:
    st = parse_machine_status(data("status-libvirt-not-created.txt"))
    assert set(st) == set(TOPO.nodes)
    assert {s.state for s in st.values()} == {"not_created"}
    assert {s.provider for s in st.values()} == {"libvirt"}


def test_machine_status_states_and_escapes() -> None:
    st = parse_machine_status(data("status-virtualbox-mixed.txt"))
    assert {n: s.state for n, s in st.items()} == {
        "client01": "running", "mail01": "running", "mail02": "poweroff", "mail03": "aborted"}
    lv = parse_machine_status(data("status-libvirt-mixed.txt"))
    assert lv["mail04"] == MachineStatus("mail04", "poweroff", "libvirt")  # libvirt's shutoff
    assert lv["mail05"].state == "running"


def test_machine_status_error_is_raised_with_vagrants_message() -> None:
    with pytest.raises(VagrantOutputError, match="mail9' was not found configured for\nthis"):
        parse_machine_status(data("status-error.txt"))


def test_ssh_config_blocks_and_connect_arguments() -> None:
    hosts = parse_ssh_config(data("ssh-config-virtualbox.txt"))
    assert list(hosts) == ["mail01", "mail02"]
    assert hosts["mail02"]["IdentityFile"].endswith("My Projects/mailring/.vagrant/machines/"
                                                    "mail02/virtualbox/private_key")
    kw = connect_kwargs(hosts["mail01"])
    assert (kw["hostname"], kw["port"], kw["username"]) == ("127.0.0.1", 2200, "vagrant")
    assert 0 < kw["timeout"] <= 30 and kw["look_for_keys"] is False
    lv = parse_ssh_config(data("ssh-config-libvirt.txt"))["client01"]
    assert connect_kwargs(lv)["port"] == 22


# -- pure operations ----------------------------------------------------------
def test_service_crash_and_log_commands() -> None:
    assert ops.service_argvs("webmail", start=False) == [["service", "nginx", "onestop"]]
    assert ops.service_argvs("haproxy", start=False) == [["service", "haproxy", "onehardstop"]]
    assert ops.service_argvs("dns", start=True) == [["service", "nsd", "onestart"],
                                                    ["service", "unbound", "onestart"]]
    assert ops.service_argvs("carp", start=False) == [["sysctl", "net.inet.carp.allow=0"]]
    assert ops.crash_argv("virtualbox", "abc") == ["VBoxManage", "controlvm", "abc", "poweroff"]
    assert ops.crash_argv("libvirt", "u-u-i-d") == ["virsh", "-c", "qemu:///system", "destroy",
                                                    "u-u-i-d"]
    assert ops.power_on_argv("virtualbox", "abc") == ["VBoxManage", "startvm", "abc", "--type",
                                                      "headless"]
    assert ops.power_on_argv("libvirt", "u-u-i-d", "qemu:///x") == ["virsh", "-c", "qemu:///x",
                                                                    "start", "u-u-i-d"]
    with pytest.raises(InputError, match="hyperv"):
        ops.power_on_argv("hyperv", "abc")
    with pytest.raises(InputError):
        ops.check_role("client01", "client", "postfix")
    assert ops.log_paths("dns", "/var/log") == ["/var/log/nsd.log", "/var/log/unbound.log"]
    assert ops.carp_lines("a\nMay 1 kernel: carp: 1@em1: BACKUP -> MASTER\n") == \
        "May 1 kernel: carp: 1@em1: BACKUP -> MASTER\n"


def test_remote_command_quotes_for_sh() -> None:
    cmd = remote_command(["sh", "-c", 'echo "$1"', "sh", "it's"])
    assert cmd.startswith("sudo -n env PATH=/sbin:")
    res = subprocess.run(["sh", "-c", cmd.split(" ", 4)[4]], capture_output=True, text=True)
    assert res.stdout == "it's\n"


def test_machine_list_puts_the_client_first(tmp_path: Path) -> None:
    roots = {n: tmp_path / n for n in TOPO.nodes}
    ml = machine_list(TOPO, roots, "mailring")
    names = [m["name"] for m in ml["machines"]]
    assert names[0] == TOPO.client.name and sorted(names) == sorted(TOPO.nodes)
    m1 = next(m for m in ml["machines"] if m["name"] == "mail01")
    assert m1["address"] == str(TOPO.node("mail01").address)
    assert m1["netmask"] == str(TOPO.network.netmask)
    assert m1["boxes"] == TOPO.vagrant.boxes and m1["memory"] == TOPO.vagrant.memory
    assert Path(m1["bundle"]).is_absolute()


def test_render_lab_refuses_a_node_outside_a_vhid(tmp_path: Path) -> None:
    text = (REPO / "fixtures" / "topology.yaml").read_text()
    path = tmp_path / "t.yaml"
    path.write_text(text.replace("mail02: 100, mail04: 140, mail03: 180}", "mail02: 100}", 1))
    with pytest.raises(InputError, match="mail03 takes part in no vhid"):
        render_lab(load(path), "t", build=tmp_path)


def test_driver_module_imports_without_python_vagrant_and_paramiko() -> None:
    code = ("import sys; sys.modules['vagrant'] = None; sys.modules['paramiko'] = None\n"
            "from mailring.cluster import driver_class\n"
            "from mailring.topology import load\n"
            f"c = driver_class('vagrant')(load({str(REPO / 'fixtures/topology.yaml')!r}))\n"
            "print(c.probe_argv())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "probe.py" in res.stdout


# -- the driver over fakes ----------------------------------------------------
@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[VagrantCluster, list]:
    """A VagrantCluster whose VMs are recorded outputs: mail02 powered off, mail04 isolated."""
    c = VagrantCluster(TOPO, lab="unit")
    c.state = LabState(tmp_path / "state.json")
    machines = {n: "running" for n in TOPO.nodes}
    machines["mail02"] = "poweroff"
    ifconfig = {"mail01": data("ifconfig-mail01-14.3-virtualbox.txt"),
                "mail03": data("ifconfig-mail03-13.2-libvirt.txt"),
                "mail04": data("ifconfig-mail04-isolated-14.3.txt")}
    calls: list[tuple[str, list[str]]] = []

    def run(node: str, argv: list[str], timeout: float = 60.0, input: str | None = None) -> Result:
        calls.append((node, argv))
        if argv == ["ifconfig"]:
            return Result(argv, 0, ifconfig.get(node, ""), "")
        if argv[-1] == "onestatus":
            return Result(argv, 0 if argv[1] != "nginx" else 1, "", "")
        if argv[0] == "sockstat":  # nginx (webmail) listens on its backend port
            address = TOPO.nodes[node].address
            return Result(argv, 0, f"www      nginx      901   6  tcp4   {address}:10080   *:*\n", "")
        return Result(argv, 0, "", "")

    monkeypatch.setattr(c, "_power", lambda node: machines[node])
    monkeypatch.setattr(c, "run", run)
    # status() reads addresses through the kept loop (holdings.HoldingsReader, tested over
    # a real SSH server in test_vagrant_ssh.py): here it answers with the same recordings
    monkeypatch.setattr(c._reader, "read", lambda node: run(node, c.guest.holdings_argv()).stdout)
    c.record_fault("mail02", "crashed")
    c.record_fault("mail04", "isolated")
    return c, calls


def test_status_reads_carp_masters_and_faults(fake: tuple[VagrantCluster, list]) -> None:
    c, _ = fake
    st = c.status()
    states = {n: s.state for n, s in st.nodes.items()}
    assert states["mail01"] == "up" and states["mail02"] == "crashed"
    assert states["mail04"] == "isolated" and states["client01"] == "up"
    for vhid in (1, 2):
        assert st.holders[VHIDS[vhid]] == ["mail01"]
    for vhid in (4, 5, 6):
        assert st.holders[VHIDS[vhid]] == ["mail03"]
    assert st.holders[VHIDS[3]] == [] and st.faults == {"mail02": "crashed", "mail04": "isolated"}


def test_services_isolate_and_heal(fake: tuple[VagrantCluster, list]) -> None:
    c, calls = fake
    c.stop_daemon("mail01", "haproxy")
    c.start_daemon("mail01", "webmail")
    c.stop_daemon("mail03", "carp")
    # each rc.d command is skipped on the node when the script is already in the wanted state
    assert [a for _, a in calls] == [
        ["sh", "-c", "if ! service haproxy onestatus >/dev/null 2>&1; then exit 0; fi; "
                     "exec service haproxy onehardstop"],
        ["sh", "-c", "if service nginx onestatus >/dev/null 2>&1; then exit 0; fi; "
                     "exec service nginx onestart"],
        ["sockstat", "-4", "-l", "-q", "-P", "tcp"],  # started: returns once nginx listens
        ["sysctl", "net.inet.carp.allow=0"]]
    with pytest.raises(InputError):
        c.stop_daemon("mail01", "dns")
    with pytest.raises(InputError, match="not isolated"):
        c.rejoin("mail01")
    calls.clear()
    c.isolate("mail03")
    assert calls[-1] == ("mail03", ["ifconfig", "vtnet1", "down"])
    c.rejoin("mail03")
    assert calls[-1] == ("mail03", ["ifconfig", "vtnet1", "up"])
    assert "mail03" not in c.faults()


def provider_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, node: str, provider: str,
                     machine_id: str, rcs: tuple[int, ...] = (0,)) -> list[list[str]]:
    """Vagrant's record of ``node`` under ``provider``, and a host whose commands exit with
    ``rcs`` in turn (the last one from then on); returns the commands run, as they come."""
    monkeypatch.setattr(VagrantCluster, "dotfile", property(lambda self: tmp_path / ".vagrant"))
    id_file = tmp_path / f".vagrant/machines/{node}/{provider}/id"
    id_file.parent.mkdir(parents=True)
    id_file.write_text(machine_id + "\n")
    seen: list[list[str]] = []

    def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess:
        seen.append(argv)
        rc = rcs[min(len(seen), len(rcs)) - 1]
        return subprocess.CompletedProcess(argv, rc, "", "error: boom" if rc else "")

    monkeypatch.setattr(vcluster.subprocess, "run", run)
    return seen


def test_crash_powers_the_vm_off(fake: tuple[VagrantCluster, list], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    c, _ = fake
    seen = provider_machine(monkeypatch, tmp_path, "mail05", "virtualbox", "1b2c-uuid")
    c.crash("mail05")
    assert seen == [["VBoxManage", "controlvm", "1b2c-uuid", "poweroff"]]
    assert c.faults()["mail05"] == "crashed"
    with pytest.raises(InputError, match="not running"):
        c.crash("mail02")


def test_boot_powers_the_vm_on_without_vagrant_up(fake: tuple[VagrantCluster, list], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    c, _ = fake
    seen = provider_machine(monkeypatch, tmp_path, "mail02", "libvirt", "d0m-uuid", rcs=(0, 1))
    waited = []
    monkeypatch.setattr(c, "wait_ready", lambda nodes=None: waited.append(nodes))
    monkeypatch.setattr(c, "_vagrant", lambda: pytest.fail("boot must not call vagrant"))
    c.boot("mail02")
    assert seen == [["virsh", "-c", c.libvirt_uri, "start", "d0m-uuid"]]
    assert waited == [["mail02"]] and "mail02" not in c.faults()
    with pytest.raises(InputError, match="is running"):
        c.boot("mail01")
    c.record_fault("mail02", "crashed")
    with pytest.raises(TransportError, match="mail02: power-on failed.*boom"):
        c.boot("mail02")  # the provider refused: its words in one error, the fault kept
    assert c.faults()["mail02"] == "crashed"


def test_up_refuses_another_labs_networks_even_when_they_are_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """vagrant-libvirt takes a defined network of the same subnet for its own (and its destroy
    removes it): a leftover of another lab, active or not, is refused before anything starts."""
    c = VagrantCluster(TOPO, lab="smoke")
    asked = []

    def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess:
        asked.append(argv)
        return subprocess.CompletedProcess(argv, 0, "mr-smoke\nmr-smoke-mgmt\nmr-old-mgmt\ndefault\n", "")

    monkeypatch.setattr(vcluster.subprocess, "run", run)
    with pytest.raises(InputError, match=r"another lab are defined \(mr-old-mgmt\).*--lab old`"):
        c._check_networks()
    assert "--all" in asked[0]


def test_up_records_its_topology_so_a_scenario_of_another_is_refused(tmp_path: Path) -> None:
    from mailring.scenario.run import check_same_topology

    c = VagrantCluster(TOPO, lab="unit")
    c.state = LabState(tmp_path / "state.json")
    assert c.brought_up_from() is None  # no record: nothing to compare
    c._record_topology()
    assert c.brought_up_from() == (str(TOPO.path), TOPO.fingerprint())
    check_same_topology(c)  # the same topology passes
    ring = tmp_path / "ring.yaml"
    ring.write_text(Path(TOPO.path).read_text().replace("advbase: 1", "advbase: 2"))
    other = VagrantCluster(load(ring), lab="unit")
    other.state = c.state
    with pytest.raises(InputError, match="that lab runs another topology"):
        check_same_topology(other)


def test_labs_keep_their_machines_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAGRANT_DOTFILE_PATH", raising=False)
    default = VagrantCluster(TOPO)
    assert default.dotfile == default.root / ".vagrant"  # a plain `vagrant ssh mail03` works
    other = VagrantCluster(TOPO, lab="mailring-gw1")
    assert other.dotfile.parts[-3:] == ("build", "mailring-gw1", ".vagrant")
    assert other._env()["VAGRANT_DOTFILE_PATH"] == str(other.dotfile)
    assert other.snapshot != default.snapshot


# -- the Vagrantfile under `vagrant validate` -----------------------------------
@pytest.fixture(scope="module")
def vagrant_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    if shutil.which("vagrant") is None:
        pytest.skip("vagrant is not installed (apt-get install vagrant vagrant-libvirt)")
    build = tmp_path_factory.mktemp("build")
    listing = render_lab(TOPO, "unit", build=build)
    assert json.loads(listing.read_text())["machines"][0]["name"] == TOPO.client.name
    work = tmp_path_factory.mktemp("vagrant")  # so `vagrant` leaves no .vagrant/ in the repo
    shutil.copy(REPO / "Vagrantfile", work / "Vagrantfile")
    env = {**os.environ, "MAILRING_VAGRANT_JSON": str(listing)}
    return work, env


def validate(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", "validate", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120)


def test_vagrantfile_validates_for_libvirt(vagrant_dir) -> None:
    work, env = vagrant_dir
    res = validate(work, {**env, "VAGRANT_DEFAULT_PROVIDER": "libvirt"})
    assert res.returncode == 0, res.stdout + res.stderr


def test_vagrantfile_validates_for_virtualbox_ignoring_the_provider(vagrant_dir) -> None:
    work, env = vagrant_dir  # VirtualBox is not in Debian 12: its own checks cannot run here
    res = validate(work, {**env, "VAGRANT_DEFAULT_PROVIDER": "virtualbox"}, "--ignore-provider")
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_typo_in_a_provider_option_fails_validation(vagrant_dir, tmp_path: Path) -> None:
    work, env = vagrant_dir
    text = (work / "Vagrantfile").read_text()
    assert "lv.cpus = " in text
    (tmp_path / "Vagrantfile").write_text(text.replace("lv.cpus = ", "lv.cpuz = "))
    res = validate(tmp_path, {**env, "VAGRANT_DEFAULT_PROVIDER": "libvirt"})
    assert res.returncode != 0 and "cpuz" in res.stdout + res.stderr


def test_a_missing_machine_list_is_one_line_naming_the_command(vagrant_dir, tmp_path) -> None:
    work, env = vagrant_dir
    res = validate(work, {**env, "MAILRING_VAGRANT_JSON": str(tmp_path / "none.json")})
    lines = (res.stdout + res.stderr).strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1
    assert "mailring render --flavour freebsd" in lines[0]


def test_no_benchmark_script_shadows_a_library_it_imports() -> None:
    """A script's folder comes first on sys.path: benchmarks/vagrant.py made the driver's
    `import vagrant` load the benchmark itself instead of python-vagrant."""
    scripts = {p.stem for p in (REPO / "benchmarks").glob("*.py")}
    libraries = {"vagrant", "paramiko", "yaml", "jinja2", "tenacity", "dns", "pyroute2", "rich",
                 "mailring", "pytest", "hypothesis"}
    assert not scripts & libraries
