"""provision/freebsd/apply.sh run against fake roots, with stand-in FreeBSD commands.

Each node's bundle is applied under ``ROOT=<tmp>/<node>`` with the commands in
``tests/unit/data/freebsd/stub.sh`` first on PATH (pkg, sysrc, sysctl, service,
ifconfig, mount, BSD stat and install ...). The stand-ins keep state like the
real ones would, and log every call that would change the node, so the tests
can show that a second run changes nothing, that the shared store's mode
stays put, and which commands a change runs (e.g. HAProxy reloaded, not
restarted).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailring.render import render
from mailring.topology import load

REPO = Path(__file__).resolve().parents[2]
TOPO = load(REPO / "fixtures" / "topology.yaml")
STUB = REPO / "tests" / "unit" / "data" / "freebsd" / "stub.sh"
COMMANDS = ("uname id pkg dovecot sysrc sysctl kldstat kldload ifconfig service stat install "
            "mount showmount certctl haproxy postfix doveconf nginx pfctl nsd-checkconf "
            "unbound-checkconf").split()
STORE = "/var/mail/vhosts"


@dataclass
class Node:
    """One node's bundle, fake root and stand-in state."""

    name: str
    bundle: Path
    root: Path
    state: Path
    env: dict[str, str]

    def apply(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(self.bundle / "apply.sh"), str(self.bundle)],
                              capture_output=True, text=True, env=self.env)

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def digest(self) -> str:
        """Every file, link and mode under the fake root and the stand-ins' state."""
        h = hashlib.sha256()
        for top in (self.root, self.state):
            for p in sorted(top.rglob("*")):
                h.update(str(p.relative_to(top)).encode())
                if p.is_symlink():
                    h.update(os.readlink(p).encode())
                elif p.is_file():
                    h.update(p.read_bytes() + oct(p.stat().st_mode).encode())
                else:
                    h.update(oct(p.stat().st_mode).encode())
        return h.hexdigest()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles")
    render(TOPO, "freebsd", out)
    return out


def make_fakes(tmp_path: Path, rendered: Path) -> dict[str, Node]:
    """client01 and mail01 with fresh fake roots; mail01's NFS mount links to client01's store."""
    bundles = tmp_path / "bundles"
    shutil.copytree(rendered, bundles, symlinks=True)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for cmd in COMMANDS:
        (stubs / cmd).symlink_to(STUB)
    nodes = {}
    for name in ("client01", "mail01"):
        root = tmp_path / "root" / name
        for d in ("etc", "boot", "var/log", "var/mail", "usr/local/share/postfix"):
            (root / d).mkdir(parents=True)
        (root / "usr/local/share/postfix/mailer.conf.postfix").write_text("sendmail /x\n")
        env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
        env.update(PATH=f"{stubs}:{env['PATH']}", ROOT=str(root), STUB_STATE=str(tmp_path / name),
                   STUB_ADDRESS=str(TOPO.node(name).address), STUB_EXPORTED=STORE,
                   STUB_EXPORT=str(tmp_path / "root" / "client01" / STORE.lstrip("/")))
        env.pop("IGNORE_OSVERSION", None)
        nodes[name] = Node(name, bundles / name, root, tmp_path / name, env)
    (tmp_path / "root" / "client01" / STORE.lstrip("/")).mkdir()  # the export exists
    return nodes


def applied(node: Node) -> str:
    res = node.apply()
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.splitlines()[-1]


@pytest.fixture
def fakes(tmp_path: Path, rendered: Path) -> dict[str, Node]:
    return make_fakes(tmp_path, rendered)


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory, rendered: Path) -> dict[str, Node]:
    """client01, then mail01, each applied once on fresh fake roots (first provisioning)."""
    nodes = make_fakes(tmp_path_factory.mktemp("provisioned"), rendered)
    for name in ("client01", "mail01"):
        assert "changed:" in applied(nodes[name])
    return nodes


def test_second_run_changes_nothing_and_the_store_mode_stays(provisioned: dict[str, Node]) -> None:
    client, mail = provisioned["client01"], provisioned["mail01"]
    assert "mount /var/mail/vhosts" in mail.calls()
    store = client.root / STORE.lstrip("/")
    assert oct(store.stat().st_mode & 0o777) == "0o770"
    before = {n.name: (n.digest(), len(n.calls())) for n in (client, mail)}
    for node in (client, mail, client):
        assert applied(node) == f"mailring-apply[{node.name}]: nothing to change", node.calls()
    assert oct(store.stat().st_mode & 0o777) == "0o770"
    assert {n.name: (n.digest(), len(n.calls())) for n in (client, mail)} == before


def test_pkg_runs_with_ignore_osversion(provisioned: dict[str, Node]) -> None:
    # the stand-in pkg refuses like pkg does on a box older than the package set
    mail = provisioned["mail01"]
    assert any(c.startswith("pkg install") and " dovecot" in c for c in mail.calls())


def test_client_alias_reaches_rc_conf(provisioned: dict[str, Node]) -> None:
    client = provisioned["client01"]
    rc = (client.root / "etc/rc.conf").read_text()
    alias = TOPO.client.aliases[0]
    assert f'ifconfig_em1_alias0="inet {alias}/32"' in rc.splitlines()
    assert "service netif restart em1" in client.calls()


def test_carp_is_held_at_boot_and_released_by_the_rc_script(provisioned: dict[str, Node]) -> None:
    mail = provisioned["mail01"]
    loader = (mail.root / "boot/loader.conf").read_text().splitlines()
    assert 'net.inet.carp.allow="0"' in loader and 'carp_load="YES"' in loader
    rc = (mail.root / "etc/rc.conf").read_text().splitlines()
    assert 'mailring_carp_enable="YES"' in rc
    calls = mail.calls()
    # new aliases come up with CARP off; the rc script turns it on after the daemons
    hold = calls.index("sysctl net.inet.carp.allow=0")
    assert hold < calls.index("service netif restart em1")
    starts = [c for c in calls if c.startswith("service ") and c.endswith(" start")]
    assert starts[-1] == "service mailring_carp start", starts
    assert (mail.root / "usr/local/etc/rc.d/mailring_carp").stat().st_mode & 0o111


def test_nfs_locking_daemons_run_on_both_sides(provisioned: dict[str, Node]) -> None:
    mail, client = provisioned["mail01"].calls(), provisioned["client01"].calls()
    for daemon in ("rpcbind", "statd", "lockd"):
        assert f"service {daemon} start" in client
        assert mail.index(f"service {daemon} start") < mail.index("mount /var/mail/vhosts")
    assert client.index("service lockd start") < client.index("service nfsd start")


def test_a_changed_haproxy_config_reloads_haproxy(fakes: dict[str, Node]) -> None:
    mail = fakes["mail01"]
    applied(mail)
    cfg = mail.bundle / "usr/local/etc/haproxy.conf"
    cfg.write_text(cfg.read_text() + "# changed\n")
    n = len(mail.calls())
    assert "haproxy" in applied(mail)
    new = mail.calls()[n:]
    assert "service haproxy reload" in new and "service haproxy restart" not in new, new
    assert not any(c.startswith("service dovecot") for c in new)


def test_syslogd_is_reloaded_for_the_haproxy_rule(provisioned: dict[str, Node]) -> None:
    mail = provisioned["mail01"]
    assert (mail.root / "var/log/haproxy.log").exists()
    assert (mail.root / "usr/local/etc/syslog.d/mailring-haproxy.conf").exists()
    calls = mail.calls()
    assert "service syslogd reload" in calls
    assert calls.index("service syslogd reload") < calls.index("service haproxy start")


def test_the_stub_commands_are_all_linked() -> None:
    text = (REPO / "provision/freebsd/apply.sh").read_text()
    for cmd in COMMANDS:
        assert cmd in text, f"{cmd} is stubbed but apply.sh does not call it"
    assert shutil.which("sh")


def test_a_dovecot_of_another_series_stops_the_run(fakes: dict[str, Node]) -> None:
    mail = fakes["mail01"]
    mail.env["STUB_DOVECOT_VERSION"] = "2.4.5"  # dovecot24 installed, the bundle is for 2.3
    res = mail.apply()
    assert res.returncode == 1
    assert 'Dovecot 2.4.5 is installed' in res.stderr and 'dovecot_version to "2.4"' in res.stderr
    assert not any(c.startswith("service ") for c in mail.calls())


def test_a_dovecot_2_4_bundle_installs_dovecot24(tmp_path: Path) -> None:
    topo_file = tmp_path / "topology.yaml"
    topo_file.write_text(f"extends: {REPO / 'fixtures' / 'topology.yaml'}\ndovecot_version: \"2.4\"\n")
    rendered = tmp_path / "rendered"
    render(load(topo_file), "freebsd", rendered)
    mail = make_fakes(tmp_path / "fake", rendered)["mail01"]
    mail.env["STUB_DOVECOT_VERSION"] = "2.4.5"
    assert "changed:" in applied(mail)
    install = next(c for c in mail.calls() if c.startswith("pkg install"))
    assert "dovecot24" in install.split() and "dovecot" not in install.split()
