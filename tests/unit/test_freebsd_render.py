"""The FreeBSD flavour's bundles, checked with the real config checkers of this machine.

Each daemon's own checker (haproxy -c, postconf, doveconf, nginx -t,
nsd-checkconf/-checkzone, unbound-checkconf) reads the rendered file after
FreeBSD-only paths are mapped into a temp folder; the FreeBSD fragments
(rc.conf CARP aliases, loader.conf, sysctl.conf, sysrc settings) match the
documented forms; apply.sh passes ``sh -n`` and ``shellcheck -s sh``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mailring.render import render
from mailring.topology import load

REPO = Path(__file__).resolve().parents[2]
TOPO = load(REPO / "fixtures" / "topology.yaml")
FREEBSD = REPO / "provision" / "freebsd"
ALIAS = re.compile(r'^ifconfig_(?P<if>[a-z]+[0-9]+)_alias(?P<n>\d+)="inet vhid (?P<vhid>\d{1,3})'
                   r"(?: advbase (?P<advbase>\d+))?(?: advskew (?P<skew>\d{1,3}))?"
                   r' pass (?P<pw>\S+) alias (?P<ip>\d+\.\d+\.\d+\.\d+)/32"$')


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed on this machine")
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("freebsd")
    roots = render(TOPO, "freebsd", out)
    assert set(roots) == set(TOPO.nodes)
    return out


def mapped(src: Path, dest: Path, mapping: dict[str, str]) -> Path:
    """Copy a rendered file with FreeBSD paths rewritten to temp ones."""
    text = src.read_text()
    for old, new in mapping.items():
        text = text.replace(old, new)
    dest.write_text(text)
    return dest


def test_every_node_gets_a_bundle_for_its_role(bundles: Path) -> None:
    for node in TOPO.nodes.values():
        root = bundles / node.name
        assert (root / "apply.sh").read_text() == (FREEBSD / "apply.sh").read_text()
        assert (root / "usr/local/etc/mailring/node.env").exists()
        assert (root / "usr/local/share/certs/mailring-ca.pem").exists()
        mail_only = root / "usr/local/etc/haproxy.conf"
        client_only = root / f"usr/local/etc/nsd/{TOPO.dns.zone}.zone"
        assert mail_only.exists() == (node.role == "mail")
        assert client_only.exists() == (node.role == "client")


def test_no_literal_address_or_node_name_in_freebsd_sources() -> None:
    sources = [*FREEBSD.iterdir(), REPO / "Vagrantfile"]
    names = set(TOPO.nodes)
    for path in sources:
        text = path.read_text()
        # loopback and ntpd's LOCAL clock driver (127.127.1.0) are no topology's addresses
        found = [a for a in re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", text) if not a.startswith("127.")]
        assert not found, f"{path} holds an address: {found}"
        for name in names:
            assert name not in text, f"{path} names node {name}"


def test_haproxy_config_is_valid(bundles: Path, tmp_path: Path) -> None:
    haproxy = need("haproxy")
    root = bundles / "mail01"
    ca = "/usr/local/share/certs/mailring-ca.pem"  # HAProxy refuses to start without it
    assert f"httpclient.ssl.ca-file {ca}\n" in (root / "usr/local/etc/haproxy.conf").read_text()
    assert (root / ca.lstrip("/")).is_file()
    cfg = mapped(root / "usr/local/etc/haproxy.conf", tmp_path / "haproxy.conf", {
        "/usr/local/etc/haproxy/certs": str(root / "usr/local/etc/haproxy/certs"),
        "/var/run/haproxy.sock": str(tmp_path / "haproxy.sock"),
        ca: str(root / ca.lstrip("/")),
    })
    # syslogd's socket: the rc script daemonizes HAProxy
    assert "log /var/run/log local0" in cfg.read_text()
    res = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_postfix_config_is_clean(bundles: Path, tmp_path: Path) -> None:
    postconf = need("postconf")
    src = bundles / "mail02" / "usr/local/etc/postfix"
    conf = tmp_path / "postfix"
    conf.mkdir()
    fix = {"/usr/local/etc/postfix": str(conf), "/var/mail/vhosts": str(tmp_path / "store"),
           "/var/log": str(tmp_path / "log")}
    for name in ("main.cf", "master.cf"):
        mapped(src / name, conf / name, fix)
    for flag in ("-n", "-M"):
        res = subprocess.run([postconf, "-c", str(conf), flag], capture_output=True, text=True)
        assert res.returncode == 0 and res.stderr == "", res.stderr
    assert "maillog_file = " + str(tmp_path / "log") in subprocess.run(
        [postconf, "-c", str(conf), "-n"], capture_output=True, text=True).stdout


def test_dovecot_config_is_clean(bundles: Path, tmp_path: Path) -> None:
    doveconf = need("doveconf")
    src = bundles / "mail03" / "usr/local/etc/dovecot/dovecot.conf"
    conf = mapped(src, tmp_path / "dovecot.conf", {
        "/usr/local/etc/dovecot": str(tmp_path), "/var/run/dovecot": str(tmp_path / "run"),
        "/var/db/dovecot": str(tmp_path / "state"), "/var/log": str(tmp_path / "log"),
        "/var/spool/postfix": str(tmp_path / "spool"), "/var/mail/vhosts": str(tmp_path / "store"),
    })
    res = subprocess.run([doveconf, "-c", str(conf), "-n"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert "/var/spool/postfix/private/auth" in src.read_text()
    # the NFS store's settings, as Dovecot reads them (it checks mail_nfs_index's prerequisites)
    for line in ("mmap_disable = yes", "mail_fsync = always", "mail_nfs_index = yes"):
        assert line in res.stdout.splitlines()


def test_nginx_config_parses(bundles: Path, tmp_path: Path) -> None:
    nginx = need("nginx")
    (tmp_path / "log").mkdir()
    conf = mapped(bundles / "mail04" / "usr/local/etc/nginx/nginx.conf", tmp_path / "nginx.conf", {
        "/var/run/nginx.pid": str(tmp_path / "nginx.pid"), "/var/log": str(tmp_path / "log"),
        "/var/tmp/nginx": str(tmp_path),
    })
    res = subprocess.run([nginx, "-t", "-c", str(conf), "-e", str(tmp_path / "log/err.log")],
                         capture_output=True, text=True)
    # nginx -t also binds the node's address, which this machine does not have
    assert "syntax is ok" in res.stderr, res.stderr
    assert res.returncode == 0 or "bind() to" in res.stderr, res.stderr


def test_dns_configs_are_valid(bundles: Path, tmp_path: Path) -> None:
    etc = bundles / "client01" / "usr/local/etc"
    res = subprocess.run([need("nsd-checkconf"), str(etc / "nsd/nsd.conf")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    zone = etc / f"nsd/{TOPO.dns.zone}.zone"
    res = subprocess.run([need("nsd-checkzone"), TOPO.dns.zone, str(zone)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    conf = mapped(etc / "unbound/unbound.conf", tmp_path / "unbound.conf",
                  {"/usr/local/etc/unbound": str(tmp_path), "/var/log": str(tmp_path)})
    res = subprocess.run([need("unbound-checkconf"), str(conf)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_carp_aliases_follow_the_handbook_form(bundles: Path) -> None:
    for node in TOPO.mail_nodes:
        lines = (bundles / node.name / "usr/local/etc/mailring/aliases.rc.conf"
                 ).read_text().splitlines()
        runs = TOPO.vips_run_by(node.name)
        assert len(lines) == len(runs)
        for n, (line, vip) in enumerate(zip(lines, runs, strict=True)):
            assert line.startswith("ifconfig_@IF@_alias")  # apply.sh puts in the NIC's name
            for nic in ("em1", "vtnet1"):  # VirtualBox, libvirt
                assert ALIAS.match(line.replace("@IF@", nic))["if"] == nic
            m = ALIAS.match(line.replace("@IF@", "em1"))
            assert m, line
            assert int(m["n"]) == n
            assert 1 <= int(m["vhid"]) <= 255 and int(m["vhid"]) == vip.vhid
            assert 0 <= int(m["skew"]) <= 240 and int(m["skew"]) == vip.skew_of(node.name)
            assert m["pw"] == TOPO.carp_password and m["ip"] == str(vip.address)
            assert m["advbase"] is None  # the topology's advbase 1 is the kernel default


def test_client_aliases_are_rendered_as_rc_conf_aliases(bundles: Path) -> None:
    client = TOPO.client
    assert client.aliases, "the fixture's client has a second source address"
    lines = (bundles / client.name / "usr/local/etc/mailring/aliases.rc.conf").read_text().splitlines()
    assert lines == [f'ifconfig_@IF@_alias{n}="inet {a}/32"' for n, a in enumerate(client.aliases)]
    # a mail node's plain aliases would be numbered after its CARP aliases
    mail = (bundles / "mail01" / "usr/local/etc/mailring/aliases.rc.conf").read_text()
    assert "alias /32" not in mail and len(mail.splitlines()) == len(TOPO.vips_run_by("mail01"))


def test_loader_sysctl_and_sysrc_fragments(bundles: Path) -> None:
    etc = bundles / "mail05" / "usr/local/etc/mailring"
    loader = [ln for ln in (etc / "loader.conf").read_text().splitlines() if not ln.startswith("#")]
    # CARP loaded at boot with every vhid held in INIT until rc.d/mailring_carp releases it
    assert loader == ['carp_load="YES"', 'net.inet.carp.allow="0"']
    assert (etc / "sysctl.conf").read_text() == "net.inet.carp.preempt=1\n"
    setting = re.compile(r"^[a-z][a-z0-9_]*=\S.*$")
    mail = {"haproxy_enable=YES", "postfix_enable=YES", "dovecot_enable=YES", "nginx_enable=YES",
            "sendmail_enable=NONE", "mailring_carp_enable=YES"}
    client = {"nsd_enable=YES", "unbound_enable=YES", "sendmail_enable=NONE"}
    for node, want in (("mail05", mail), ("client01", client)):
        lines = [ln for ln in (bundles / node / "usr/local/etc/mailring/rc.sysrc").read_text()
                 .splitlines() if ln and not ln.startswith("#")]
        assert all(setting.match(ln) for ln in lines), lines
        assert want <= set(lines)


def test_node_env_is_sourceable(bundles: Path) -> None:
    env = bundles / "mail01" / "usr/local/etc/mailring/node.env"
    res = subprocess.run(["sh", "-c", '. "$1" && echo "$NODE $ADDRESS $NFS_SERVER $ROLE"', "sh",
                          str(env)], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["mail01", str(TOPO.node("mail01").address),
                                  str(TOPO.client.address), "mail"]


def test_apply_sh_is_posix_and_shellcheck_clean() -> None:
    script = FREEBSD / "apply.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    res = subprocess.run([need("shellcheck"), "-s", "sh", str(script)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout


def _function(name: str) -> str:
    """One shell function of apply.sh, as text (from `name() {` to the `}` that closes it)."""
    text = (FREEBSD / "apply.sh").read_text()
    start = text.index(f"\n{name}() {{") + 1
    return text[start:text.index("\n}\n", start) + 3]


def test_merge_block_is_idempotent_and_stays_out_of_vagrants_block(tmp_path: Path) -> None:
    rc = tmp_path / "rc.conf"
    vagrant_block = ('#VAGRANT-BEGIN\nifconfig_em1="inet 192.0.2.11 netmask 255.255.255.0"\n'
                     "#VAGRANT-END\n")
    rc.write_text('hostname="m"\nsshd_enable="YES"\n' + vagrant_block)
    block = tmp_path / "carp"
    block.write_text('ifconfig_em1_alias0="inet vhid 1 pass p alias 192.0.2.101/32"\n')
    script = (f'TMP="{tmp_path}"; say() {{ :; }}\n' + _function("merge_block")
              + f'\nmerge_block "{rc}" carp "{block}"; echo "rc=$?"\n')

    def merge() -> str:
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                              check=True).stdout.strip()

    assert merge() == "rc=0"
    first = rc.read_text()
    assert merge() == "rc=1" and rc.read_text() == first
    # Vagrant rewrites its block on every `up`: delete, then append at the end.
    rc.write_text(first.replace(vagrant_block, "") + vagrant_block)
    moved = rc.read_text()
    assert merge() == "rc=1" and rc.read_text() == moved
    inside = moved.split("#VAGRANT-BEGIN")[1].split("#VAGRANT-END")[0]
    assert "alias0" not in inside and moved.count("alias0") == 1
    block.write_text('ifconfig_em1_alias0="inet vhid 2 pass p alias 192.0.2.102/32"\n')
    assert merge() == "rc=0" and "vhid 1 " not in rc.read_text()


def test_apply_sysrc_unquotes_values_and_sets_only_what_differs(tmp_path: Path) -> None:
    frag = tmp_path / "loader.conf"
    frag.write_text('# comment\ncarp_load="YES"\nhaproxy_enable=YES\n')
    # a stand-in sysrc: -c succeeds only for haproxy_enable=YES (already set)
    script = (f'TMP="{tmp_path}"; CHANGED=" "; say() {{ echo "say $*"; }}\n'
              'mark() { CHANGED="$CHANGED$1 "; }\n'
              'sysrc() { if [ "$3" = -c ]; then [ "$4" = haproxy_enable=YES ]; return; fi;'
              ' echo "sysrc $*" >&2; }\n'
              + _function("apply_sysrc") + f'\napply_sysrc /boot/loader.conf "{frag}"\n'
              'echo "changed:$CHANGED"\n')
    res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    out = res.stdout.splitlines()
    assert res.stderr.splitlines() == ["sysrc -f /boot/loader.conf carp_load=YES"]
    assert not any("haproxy_enable" in line and line.startswith("sysrc") for line in out)
    assert out[-1] == "changed: carp "


def test_apply_sh_refuses_to_run_off_freebsd(bundles: Path) -> None:
    res = subprocess.run(["sh", str(bundles / "mail01" / "apply.sh"), str(bundles / "mail01")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "configures FreeBSD nodes only" in res.stderr
    res = subprocess.run(["sh", str(bundles / "mail01" / "apply.sh"), str(bundles)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "mailring render --flavour freebsd" in res.stderr


def test_haproxy_log_reaches_the_file_the_driver_reads(bundles: Path) -> None:
    from mailring.drivers.vagrant import ops
    from mailring.render.engine import load_manifest

    paths = load_manifest("freebsd").paths
    root = bundles / "mail01"
    # HAProxy logs to syslogd's local socket (_PATH_LOG) with a facility ...
    log = next(ln.split() for ln in (root / "usr/local/etc/haproxy.conf").read_text().splitlines()
               if ln.strip().startswith("log /"))
    assert log[1] == "/var/run/log" == paths["haproxy_log"]
    facility = log[2]
    # ... a syslog.d rule (only *.conf files are included) files that facility ...
    rules = list((root / paths["syslog_d"].lstrip("/")).glob("*.conf"))
    assert len(rules) == 1
    selector, target = next(ln.split() for ln in rules[0].read_text().splitlines()
                            if ln and not ln.startswith("#"))
    assert selector == f"{facility}.*"
    # ... into the file the vagrant driver reads for `mailring logs <node> haproxy`.
    assert ops.log_paths("haproxy", paths["log"]) == [target]


def test_the_nfs_store_has_locking_and_cannot_hang_a_node(bundles: Path) -> None:
    line = (bundles / "mail02" / "usr/local/etc/mailring/fstab").read_text().split()
    assert line[1:3] == [paths_of("mail_store"), "nfs"]
    opts = dict(o.partition("=")[::2] for o in line[3].split(","))
    # soft+intr: a dead store host fails calls (EIO/EINTR) instead of hanging them forever;
    # bg: a boot without it goes on; timeout (1/10 s) and retrans bound the wait.
    assert {"rw", "bg", "nfsv3", "tcp", "soft", "intr"} <= opts.keys()
    assert "hard" not in opts and "nolockd" not in opts  # NLM locks reach the server
    assert 0 < int(opts["timeout"]) <= 100 and 0 < int(opts["retrans"]) <= 5
    for node in ("mail02", "client01"):
        sysrc = (bundles / node / "usr/local/etc/mailring/rc.sysrc").read_text().splitlines()
        assert {"rpcbind_enable=YES", "rpc_lockd_enable=YES", "rpc_statd_enable=YES"} <= set(sysrc)


def test_the_client_node_serves_the_clock_the_mail_nodes_follow(bundles: Path) -> None:
    """Dovecot's maildir on NFS needs the nodes' clocks within a second of the store's server."""
    def conf(node: str) -> list[str]:
        text = (bundles / node / "usr/local/etc/mailring/ntp.conf").read_text()
        return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]

    def sources(lines: list[str]) -> list[str]:
        return [ln.split()[1] for ln in lines if ln.split()[0] in ("server", "pool", "peer")]

    client = conf("client01")
    assert sources(client) == ["127.127.1.0"]
    assert [ln for ln in client if ln.startswith("restrict") and "ignore" in ln] == []
    assert sources(conf("mail03")) == [str(TOPO.client.address)]
    for node in ("mail03", "client01"):
        sysrc = set((bundles / node / "usr/local/etc/mailring/rc.sysrc").read_text().splitlines())
        assert {"ntpd_enable=YES", f"ntpd_config={paths_of('ntp_conf')}"} <= sysrc
    mail = set((bundles / "mail03" / "usr/local/etc/mailring/rc.sysrc").read_text().splitlines())
    assert {"ntpdate_enable=YES", f"ntpdate_hosts={TOPO.client.address}"} <= mail


def paths_of(key: str) -> str:
    from mailring.render.engine import load_manifest

    return load_manifest("freebsd").paths[key]


NFS_SETTINGS = {"mmap_disable": "yes", "mail_fsync": "always", "mail_nfs_storage": "yes",
                "mail_nfs_index": "yes"}


def test_dovecot_has_its_nfs_settings_on_freebsd_only(bundles: Path, tmp_path: Path) -> None:
    def settings(text: str) -> dict[str, str]:
        return {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in text.splitlines())
                if k.strip() in NFS_SETTINGS}

    conf = (bundles / "mail01" / "usr/local/etc/dovecot/dovecot.conf").read_text()
    assert settings(conf) == NFS_SETTINGS
    debian = tmp_path / "debian"
    render(TOPO, "debian", debian)
    lab = next(debian.rglob("dovecot.conf")).read_text()
    assert settings(lab) == {}  # the lab's store is a local bind mount


def test_pf_keeps_clients_off_the_proxy_ports_and_passes_carp(bundles: Path) -> None:
    """pf_enable + pf_rules in rc.conf; pf.conf passes everything (CARP explicitly) but a
    PROXY port from anyone outside the mail nodes' table; pf starts before the daemons."""
    ports = sorted(s.proxy_port for s in TOPO.services.values() if s.daemon and s.proxy_port)
    allowed = {str(n.address) for n in TOPO.mail_nodes} | {str(v.address) for v in TOPO.vips}
    for node in TOPO.mail_nodes:
        etc = bundles / node.name / "usr/local/etc/mailring"
        pf = (etc / "pf.conf").read_text()
        table = re.search(r"^table <mail_nodes> const \{ ([^}]*) \}$", pf, re.M)
        assert table and set(table.group(1).split(", ")) == allowed, pf
        assert f'proxy_ports = "{{ {", ".join(map(str, ports))} }}"' in pf
        rules = [line for line in pf.splitlines()
                 if line and not line.startswith(("#", "table", "proxy_ports"))]
        block = "block return in quick proto tcp from ! <mail_nodes> to any port $proxy_ports"
        assert rules == ["set skip on lo0", "pass all", "pass quick proto 112", block], rules
        sysrc = (etc / "rc.sysrc").read_text().splitlines()
        assert "pf_enable=YES" in sysrc and "pf_rules=/usr/local/etc/mailring/pf.conf" in sysrc
        env = (etc / "node.env").read_text()
        services = re.search(r"SERVICES='([^']*)'", env).group(1).split()
        assert services.index("pf") < services.index("dovecot"), services
    assert not (bundles / TOPO.client.name / "usr/local/etc/mailring/pf.conf").exists()
