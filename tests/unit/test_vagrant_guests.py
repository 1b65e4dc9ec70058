"""Guest adapters, provider power states, the Debian VM flavour and the VM confinement,
without a VM: recorded outputs of `ip -j addr`, `systemctl list-units`, `virsh domstate`,
and the debian-vm bundle's apply.py run on its own services.yaml."""

from __future__ import annotations

import importlib.util
import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest
import yaml

from mailring.drivers.vagrant import power
from mailring.drivers.vagrant.confine import Confinement, Names
from mailring.drivers.vagrant.guests import guest_for
from mailring.drivers.vagrant.guests.debian import Debian
from mailring.drivers.vagrant.machines import machine_list, render_lab
from mailring.drivers.vagrant.residue import HostWatch, host_leaks, leftovers
from mailring.errors import InputError
from mailring.render import render
from mailring.topology import load

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "vagrant"
VM_TOPO = load(REPO / "fixtures" / "topology-vm.yaml")
VHIDS = {v.vhid: str(v.address) for v in VM_TOPO.vips}


def data(name: str) -> str:
    return (DATA / name).read_text()


# -- adapter choice -------------------------------------------------------------
def test_the_topology_picks_the_guest_adapter_and_its_flavour() -> None:
    assert VM_TOPO.vagrant.os == "debian"
    guest = guest_for(VM_TOPO.vagrant.os)
    assert guest.flavour == "debian-vm" and not guest.auto_config
    assert guest_for("freebsd").flavour == "freebsd"
    with pytest.raises(InputError, match="vagrant.os: 'plan9'"):
        guest_for("plan9")


def test_machine_list_carries_the_guest_and_per_lab_networks(tmp_path: Path) -> None:
    roots = {n: tmp_path / n for n in VM_TOPO.nodes}
    one, two = machine_list(VM_TOPO, roots, "w1"), machine_list(VM_TOPO, roots, "w2")
    assert one["guest"]["apply"] == "python3 /tmp/mailring-bundle/apply.py /tmp/mailring-bundle"
    assert one["guest"]["auto_config"] is False
    assert one["network"]["name"] == "mr-w1" and one["network"]["mgmt_name"] == "mr-w1-mgmt"
    assert {one["network"]["name"], one["network"]["mgmt_name"]}.isdisjoint(
        {two["network"]["name"], two["network"]["mgmt_name"]})
    assert [m["name"] for m in one["machines"]][0] == "client01"
    assert {m["boxes"]["libvirt"] for m in one["machines"]} == {"mailring/debian12"}


# -- Debian: addresses and units ------------------------------------------------
def test_debian_holdings_are_the_vip_32s_on_the_nic_with_the_node_address() -> None:
    held = Debian().holdings(data("ip-addr-mail01-debian.json"), "192.168.56.11", VHIDS)
    assert held.iface == "eth1" and held.up
    assert held.vips == ("192.168.56.101", "192.168.56.102")


def test_debian_holdings_of_an_isolated_node_hold_nothing() -> None:
    held = Debian().holdings(data("ip-addr-mail01-isolated-debian.json"), "192.168.56.11", VHIDS)
    assert held.iface == "eth1" and not held.up and held.vips == ()


def test_debian_holdings_without_the_address_name_no_nic() -> None:
    held = Debian().holdings(data("ip-addr-mail01-debian.json"), "192.168.56.99", VHIDS)
    assert held.iface is None and held.vips == ()
    with pytest.raises(ValueError, match="no JSON"):
        Debian().holdings("Device \"eth9\" does not exist.", "192.168.56.11", VHIDS)


def test_debian_readiness_reads_systemctl_list_units() -> None:
    guest = Debian()
    assert guest.not_ready("mail", data("list-units-mail01-ready.txt"), 0) == ""
    waiting = guest.not_ready("mail", data("list-units-mail01-booting.txt"), 0)
    assert "mailring-carp-vhid1.service activating/start-pre" in waiting
    assert guest.not_ready("client", data("list-units-client01-ready.txt"), 0) == ""
    assert guest.not_ready("client", "", 0) == "no unit for dns"


def test_debian_service_control_is_one_target_per_service() -> None:
    guest = Debian()
    assert guest.service_argvs("carp", start=False) == [["systemctl", "stop", "mailring-carp.target"]]
    assert guest.service_argvs("dns", start=True) == [["systemctl", "start", "mailring-dns.target"]]
    assert guest.link_argv("eth1", up=False) == ["ip", "link", "set", "eth1", "down"]
    with pytest.raises(InputError, match="unknown service"):
        guest.service_argvs("sendmail", start=True)


# -- provider power states ------------------------------------------------------
def test_power_state_from_virsh_domstate_and_vboxmanage(tmp_path: Path) -> None:
    assert power.parse_state("libvirt", data("domstate-running.txt")) == "running"
    assert power.parse_state("libvirt", data("domstate-shut-off.txt")) == "shut off"
    assert power.parse_state("virtualbox", 'name="mail01"\nVMState="poweroff"\n') == "poweroff"
    assert power.machine(tmp_path, "mail01") is None
    (tmp_path / "machines/mail01/libvirt").mkdir(parents=True)
    (tmp_path / "machines/mail01/libvirt/id").write_text("0c5c-uuid\n")
    assert power.machine(tmp_path, "mail01") == ("libvirt", "0c5c-uuid")
    assert power.state_argv("libvirt", "0c5c-uuid", "qemu:///system") == [
        "virsh", "-c", "qemu:///system", "domstate", "0c5c-uuid"]


# -- the debian-vm bundle ---------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("debian-vm")
    render(VM_TOPO, "debian-vm", out)
    return out


def deps(unit: str, key: str) -> list[str]:
    """Every unit named on ``key=`` lines of a unit file's text."""
    return [name for line in unit.splitlines() if line.startswith(key + "=")
            for name in line.split("=", 1)[1].split()]


def load_apply(root: Path):
    spec = importlib.util.spec_from_file_location("mailring_apply", root / "apply.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_apply_makes_one_ucarp_unit_per_vhid_with_the_labs_arguments(bundle: Path) -> None:
    root = bundle / "mail01"
    apply = load_apply(root)
    services = yaml.safe_load((root / "etc/mailring/services.yaml").read_text())
    units = apply.units(services)
    runs = [v.vhid for v in VM_TOPO.vips_run_by("mail01")]
    carp = sorted(n for n in units if n.startswith("mailring-carp-vhid"))
    assert carp == sorted(f"mailring-carp-vhid{v}.service" for v in runs)
    text = units["mailring-carp-vhid1.service"]
    assert "Requires=mailring-gate.service" in text and "PartOf=mailring-carp.target" in text
    assert "ExecStart=/etc/mailring/carp-gate" in units["mailring-gate.service"]
    assert "-i eth1 -s 192.168.56.11 -v 1" in text and "-k 0" in text and " -P " in text
    assert "mailring-haproxy.target" in units["mailring-gate.service"]
    for name in ("postfix", "dovecot", "haproxy", "webmail", "carp"):
        assert f"mailring-{name}.target" in units["mailring.target"]
    assert "RequiresMountsFor=/var/mail/vhosts" in units["mailring-postfix-postfix.service"]
    assert "ExecStart=nginx -c /etc/nginx/nginx.conf -g 'daemon off;'" in \
        units["mailring-webmail-nginx.service"]


def test_apply_loads_the_packet_filter_before_any_mail_daemon(bundle: Path) -> None:
    """A mail node's units all require mailring-filter.service (nft -f the rendered rules);
    the client, with no PROXY listener, has no filter."""
    root = bundle / "mail01"
    units = load_apply(root).units(yaml.safe_load((root / "etc/mailring/services.yaml").read_text()))
    assert "ExecStart=/usr/sbin/nft -f /etc/mailring/nftables.conf" in units["mailring-filter.service"]
    assert (root / "etc/mailring/nftables.conf").is_file()
    daemons = [n for n in units if n.endswith(".service") and n not in (
        "mailring-filter.service", "mailring-gate.service", "mailring-clock.service")]
    for name in daemons:
        assert "mailring-filter.service" in deps(units[name], "Requires"), name
        assert "mailring-filter.service" in deps(units[name], "After"), name
    client = bundle / "client01"
    client_units = load_apply(client).units(
        yaml.safe_load((client / "etc/mailring/services.yaml").read_text()))
    assert "mailring-filter.service" not in client_units


def test_mail_daemons_start_once_the_clock_follows_the_client_node(bundle: Path) -> None:
    """Dovecot's maildir on NFS needs the nodes' clocks within a second of the store's server:
    the client node serves its clock (chrony), the mail nodes follow it and their daemons wait
    for chronyc waitsync."""
    def directives(node: str) -> list[str]:
        text = (bundle / node / "etc/chrony/chrony.conf").read_text()
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    client = directives("client01")
    assert "local stratum 8" in client and f"allow {VM_TOPO.network}" in client
    assert not [d for d in client if d.split()[0] in ("server", "pool", "peer")], client
    root = bundle / "mail02"
    mail = directives("mail02")
    assert [d for d in mail if d.split()[0] in ("server", "pool", "peer", "allow", "local")] == [
        f"server {VM_TOPO.client.address} iburst minpoll 0 maxpoll 2"], mail
    units = load_apply(root).units(yaml.safe_load((root / "etc/mailring/services.yaml").read_text()))
    assert "ExecStart=/usr/bin/chronyc waitsync " in units["mailring-clock.service"]
    for name in ("mailring-postfix-postfix.service", "mailring-dovecot-dovecot.service"):
        assert "mailring-clock.service" in deps(units[name], "Requires"), name
        assert "mailring-clock.service" in deps(units[name], "After"), name


def test_apply_escapes_dollars_and_percents_for_systemd(bundle: Path) -> None:
    apply = load_apply(bundle / "client01")
    assert apply.systemd_quote(["sh", "-c", 'echo "$1" 50%']) == "sh -c 'echo \"$$1\" 50%%'"


def test_client_bundle_exports_the_store_and_mail_bundles_mount_it(bundle: Path) -> None:
    exports = (bundle / "client01/etc/exports.d/mailring.exports").read_text()
    for node in VM_TOPO.mail_nodes:
        assert f" {node.address}(rw," in exports
    mount = (bundle / "mail02/etc/systemd/system/var-mail-vhosts.mount").read_text()
    assert f"What={VM_TOPO.client.address}:/var/mail/vhosts" in mount
    net = (bundle / "mail02/etc/systemd/network/20-mailring-cluster.network").read_text()
    assert "Name=eth1" in net and "Address=192.168.56.12/24" in net
    assert "net.ipv4.ip_nonlocal_bind = 1" in (bundle / "mail02/etc/sysctl.d/60-mailring.conf").read_text()


def test_render_lab_writes_the_debian_machine_list(tmp_path: Path) -> None:
    listing = json.loads(render_lab(VM_TOPO, "unit", build=tmp_path).read_text())
    assert listing["guest"]["os"] == "debian"
    assert (tmp_path / "unit" / "debian-vm" / "mail01" / "apply.py").exists()


# -- confinement ----------------------------------------------------------------
def test_host_leaks_names_vm_addresses_and_devices() -> None:
    nets = [IPv4Network("192.168.56.0/24"), IPv4Network("192.168.121.0/24")]
    assert host_leaks(nets, data("ip-addr-host-clean.json")) == ""
    leaks = host_leaks(nets, data("ip-addr-host-leaking.json"))
    assert "192.168.121.1 on virbr1" in leaks and "device vnet0" in leaks


def test_host_watch_checks_at_start_and_end_even_when_the_command_is_quick() -> None:
    """A command that ends within a second still gets checked: "clean" never rests on 0 checks,
    and a leak that shows only at the end is caught."""
    answers = iter(["", "192.168.56.1 on mr-x"])
    watch = HostWatch([IPv4Network("192.168.56.0/24")], leaks=lambda nets: next(answers))
    watch.start()
    watch.stop()
    assert watch.checks == 2
    assert watch.seen == ["192.168.56.1 on mr-x"]


def test_leftovers_after_teardown_name_each_thing_of_the_run_and_nothing_else(tmp_path) -> None:
    names = Names("w10", tmp_path / "build")
    proc, etc, netns = tmp_path / "proc", tmp_path / "etc", tmp_path / "netns"
    for d in (proc, etc / "qemu" / "networks", etc / "storage", netns):
        d.mkdir(parents=True)

    def process(pid: int, comm: str, cmdline: list[str], state: str = "S") -> None:
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) {state} 1 2 3")
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmdline))

    # another lab's QEMU, a zombie daemon and a PID reused by another program are not ours
    process(500, "qemu-system-x86", ["qemu-system-x86_64", "-name", "guest=w100-mail01,x=y"])
    process(501, "libvirtd", ["libvirtd"], state="Z")
    process(502, "bash", ["bash"])
    (etc / "qemu" / "w100-mail01.xml").write_text("<domain/>")
    pids = {"libvirtd": 501, "virtlogd": 502}
    assert leftovers(names, pids, proc, etc, netns) == []
    process(600, "qemu-system-x86", ["qemu-system-x86_64", "-name", "guest=w10-mail02,x=y"])
    process(601, "virtlogd", ["virtlogd", "-d"])
    (etc / "qemu" / "networks" / "mr-w10-mgmt.xml").write_text("<network/>")
    (netns / "mr-w10-vm").write_text("")
    names.pool_dir.mkdir(parents=True)
    left = leftovers(names, {"libvirtd": 501, "virtlogd": 601}, proc, etc, netns)
    assert left == ["namespace mr-w10-vm", f"libvirt definitions of lab w10 in {etc}",
                    "virtlogd pid 601", "QEMU pid 600 of a w10 domain",
                    f"pool folder {names.pool_dir}"]


def test_confined_names_belong_to_one_lab_only() -> None:
    names = Names("w10", Path("/tmp/build"))
    assert names.netns == "mr-w10-vm" and names.pool == "mr-w10"
    assert names.domain("w10-mail01") and not names.domain("w100-mail01")
    assert names.network("mr-w10-mgmt") and not names.network("mr-w100")


def test_the_confined_command_uses_the_confinements_lab_name() -> None:
    """A kept or half-torn-down cluster's domains (``<lab>-<node>``) must be ones the
    confinement's teardown recognises: the command runs with MAILRING_LAB set to its lab."""
    conf = Confinement(Names("smoke", Path("/tmp/build")))
    lab = conf.env()["MAILRING_LAB"]
    assert lab == "smoke" and conf.names.domain(f"{lab}-mail02")
    assert not conf.names.domain("mailring-mail02")


def test_debian_listening_reads_ss_and_marks_any_address() -> None:
    # `ss -ltn` on mail02 (first lines, header dropped as -H does) while it booted after a crash
    have = Debian().listening(data("ss-ltn-mail02-debian.txt"))
    assert {"192.168.56.12:10025", "192.168.56.12:10110", "192.168.56.12:10080", "*:22"} <= have
    assert "192.168.56.12:10143" not in have  # dovecot's IMAP backend port: not bound yet


def test_freebsd_listening_reads_sockstat() -> None:
    # sockstat(1) -4lq -P tcp columns: USER COMMAND PID FD PROTO LOCAL FOREIGN
    text = ("root     master     812   13 tcp4   192.168.56.12:10025   *:*\n"
            "root     sshd       700   4  tcp4   *:22                  *:*\n")
    have = guest_for("freebsd").listening(text)
    assert have == {"192.168.56.12:10025", "*:22"}


def test_wait_listening_returns_once_bound_and_names_closed_ports_on_timeout() -> None:
    from mailring.cluster import Result
    from mailring.drivers.vagrant.ready import wait_listening

    class Node:  # the two commands wait_listening runs, answered with outputs recorded on mail02
        topology = VM_TOPO

        def run(self, node: str, argv: list[str], timeout: float = 60.0) -> Result:
            if argv[0] == "ss":
                return Result(argv, 0, data("ss-ltn-mail02-debian.txt"), "")
            return Result(argv, 0, data("list-units-mail01-booting.txt"), "")

    wait_listening(Node(), Debian(), "mail02", {"192.168.56.12:10025", "192.168.56.12:10110"}, 5)
    with pytest.raises(TimeoutError, match=r"mail02: not listening on 192\.168\.56\.12:10143 after 0 s; "
                                           r"mail02: .*activating"):
        wait_listening(Node(), Debian(), "mail02", {"192.168.56.12:10143"}, 0.2)
