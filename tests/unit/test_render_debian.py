"""Rendered Debian bundles: every config passes its daemon's own checker; nothing is hard-coded."""

from __future__ import annotations

import re
import subprocess
from ipaddress import ip_network
from pathlib import Path

import pytest
import yaml

from mailring.cli.main import main
from mailring.render import render
from mailring.render.engine import PROVISION
from mailring.topology import DEFAULT_TOPOLOGY, load

RING = load(DEFAULT_TOPOLOGY)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    return render(RING, "debian", tmp_path_factory.mktemp("debian"))


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True)


def test_every_node_gets_a_bundle(bundles) -> None:
    assert set(bundles) == set(RING.nodes)
    for node in RING.mail_nodes:
        root = bundles[node.name]
        for f in ("etc/haproxy/haproxy.cfg", "etc/postfix/main.cf", "etc/dovecot/dovecot.conf",
                  "etc/nginx/nginx.conf", "etc/mailring/services.yaml"):
            assert (root / f).is_file(), f
    assert (bundles["client01"] / f"etc/nsd/{RING.dns.zone}.zone").is_file()


def mapped_ca(cfg: str, root: Path) -> str:
    """The config with its HTTP client's CA file (a node's path) read from the bundle, which
    must render that file: HAProxy refuses to start when it is missing."""
    ca = re.search(r"^    httpclient\.ssl\.ca-file (\S+)$", cfg, re.M)
    assert ca, "no httpclient.ssl.ca-file: HAProxy would read the whole system CA store at each start"
    assert (root / ca[1].lstrip("/")).is_file(), f"the bundle has no {ca[1]}"
    return cfg.replace(ca[1], str(root / ca[1].lstrip("/")))


@pytest.mark.parametrize("node", [n.name for n in RING.mail_nodes])
def test_haproxy_config_is_valid(bundles, node, tmp_path, need_tool) -> None:
    haproxy = need_tool("haproxy")
    root = bundles[node]
    cfg = (root / "etc/haproxy/haproxy.cfg").read_text()
    cfg = cfg.replace("/etc/haproxy/certs", str(root / "etc/haproxy/certs"))
    cfg = mapped_ca(cfg, root)
    (tmp_path / "h.cfg").write_text(cfg)
    res = run(haproxy, "-c", "-f", str(tmp_path / "h.cfg"))
    assert res.returncode == 0, res.stdout + res.stderr
    # every VIP is bound for every service, the local server first, the others as backups
    bound = [a for line in cfg.splitlines() if line.startswith("    bind ")
             for a in line.split()[1].split(",")]
    assert sorted(bound) == sorted(f"{vip.address}:{svc.port}" for svc in RING.services.values()
                                   for vip in RING.vips)
    local = re.search(r"backend be_smtp\n(?:    .*\n)*?    server (\S+) (\S+) check", cfg)
    assert local and local.group(1) == node
    assert cfg.count(" backup") >= len(RING.services) * (len(RING.mail_nodes) - 1)
    assert "option allbackups" in cfg and "level admin" in cfg


@pytest.mark.parametrize("node", [n.name for n in RING.mail_nodes])
def test_postfix_config_is_valid(bundles, node, need_tool) -> None:
    postconf = need_tool("postconf")
    conf = bundles[node] / "etc/postfix"
    for flag in ("-n", "-M"):
        res = run(postconf, "-c", str(conf), flag)
        assert res.returncode == 0 and res.stderr == "", res.stderr
    main_cf = run(postconf, "-c", str(conf), "-h", "inet_interfaces").stdout
    assert str(RING.nodes[node].address) in main_cf
    master = (conf / "master.cf").read_text()
    assert "smtpd_upstream_proxy_protocol=haproxy" in master


@pytest.mark.parametrize("path", ["topology.yaml", "topology-noproxy.yaml"])
def test_mynetworks_never_holds_a_client_network_by_accident(path, tmp_path, need_tool) -> None:
    """Postfix relays to any domain for mynetworks: loopback, the mail nodes one by one and the
    topology's customer networks, nothing else. No entry may hold a client address that is
    no customer (client01's alias), nor the cluster network as a whole."""
    postconf = need_tool("postconf")
    topo = load(DEFAULT_TOPOLOGY.parent / path)
    roots = render(topo, "debian", tmp_path)
    clients = [a for n in topo.nodes.values() if n.role == "client" for a in (n.address, *n.aliases)]
    strangers = [a for a in clients if not topo.is_customer(a)]
    assert strangers and topo.customer_networks, "the fixture has a customer and a stranger address"
    for node in topo.mail_nodes:
        value = run(postconf, "-c", str(roots[node.name] / "etc/postfix"), "-h", "mynetworks").stdout
        nets = [ip_network(v) for v in value.replace(",", " ").split()]
        assert nets == [ip_network("127.0.0.0/8"), *(ip_network(f"{n.address}/32") for n in topo.mail_nodes),
                        *topo.customer_networks], value
        trusted = [(a, net) for a in strangers for net in nets if a in net]
        assert not trusted, f"{node.name}: mynetworks holds the stranger: {trusted}"
        assert not any(topo.network.subnet_of(net) for net in nets), value


@pytest.mark.parametrize("node", [n.name for n in RING.mail_nodes])
def test_dovecot_config_is_valid(bundles, node, need_tool) -> None:
    doveconf = need_tool("doveconf")
    res = run(doveconf, "-c", str(bundles[node] / "etc/dovecot/dovecot.conf"), "-n")
    assert res.returncode == 0, res.stderr
    assert "haproxy = yes" in res.stdout
    assert "haproxy_trusted_networks" in res.stdout


def test_dns_configs_are_valid(bundles, need_tool) -> None:
    root = bundles["client01"]
    res = run(need_tool("nsd-checkconf"), str(root / "etc/nsd/nsd.conf"))
    assert res.returncode == 0, res.stderr
    res = run(need_tool("nsd-checkzone"), RING.dns.zone, str(root / f"etc/nsd/{RING.dns.zone}.zone"))
    assert res.returncode == 0, res.stdout + res.stderr
    res = run(need_tool("unbound-checkconf"), str(root / "etc/unbound/unbound.conf"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_webmail_config_is_valid(bundles, tmp_path, need_tool) -> None:
    nginx = need_tool("nginx")
    root = bundles["mail01"]
    conf = (root / "etc/nginx/nginx.conf").read_text()
    for path in ("/run", "/var/log", "/var/lib/nginx"):
        conf = conf.replace(f"{path}/", f"{tmp_path}/")
    (tmp_path / "n.conf").write_text(conf)
    res = run(nginx, "-t", "-c", str(tmp_path / "n.conf"), "-e", str(tmp_path / "err.log"))
    # nginx -t also binds the node's listen addresses, which this host does not have
    assert "syntax is ok" in res.stderr, res.stderr


def test_ucarp_runs_every_vhid_of_the_node_with_its_skew(tmp_path) -> None:
    bundles = render(RING, "debian", tmp_path, carp_speaker="ucarp")
    for node in RING.mail_nodes:
        services = yaml.safe_load((bundles[node.name] / "etc/mailring/services.yaml").read_text())
        argvs = services["carp"] + services["carp-backup"]
        seen = {(a[a.index("-a") + 1], int(a[a.index("-k") + 1])) for a in argvs}
        want = {(str(v.address), v.skew_of(node.name)) for v in RING.vips_run_by(node.name)}
        assert seen == want
        assert all("-P" in a for a in argvs)  # preemption: VIPs come home without a cron job


def test_a_topology_with_preemption_off_renders_ucarp_without_it(tmp_path) -> None:
    topo = load(DEFAULT_TOPOLOGY.parent / "topology-nopreempt.yaml")
    assert topo.preempt is False and RING.preempt is True
    bundle = render(topo, "debian", tmp_path, carp_speaker="ucarp")["mail01"]
    services = yaml.safe_load((bundle / "etc/mailring/services.yaml").read_text())
    argvs = services["carp"] + services["carp-backup"]
    assert argvs and not any("-P" in a for a in argvs) and all("-z" in a for a in argvs)


def test_a_topology_with_preemption_off_renders_keepalived_without_it(tmp_path, need_tool) -> None:
    topo = load(DEFAULT_TOPOLOGY.parent / "topology-nopreempt.yaml")
    root = render(topo, "debian", tmp_path)["mail01"] / "etc/mailring"
    for group in ("carp", "carp-backup"):
        conf = _settings((root / f"keepalived-{group}.conf").read_text())
        assert "nopreempt" in conf and "state MASTER" not in conf and "priority 255" not in conf
        res = run(need_tool("keepalived"), "--config-test", "-f", str(root / f"keepalived-{group}.conf"))
        assert res.returncode == 0, res.stderr


def _settings(conf: str) -> str:
    """A keepalived config without its comment lines."""
    return "\n".join(line for line in conf.splitlines() if not line.lstrip().startswith("#"))


def _vrrp_instances(conf: str) -> dict[str, dict[str, str]]:
    """VIP -> the keywords of its vrrp_instance block (first word -> the rest of the line)."""
    out = {}
    for block in conf.split("vrrp_instance ")[1:]:
        words = {line.split()[0]: " ".join(line.split()[1:]) for line in block.splitlines()[1:]
                 if line.strip() and line.split()[0] not in ("}", "{")}
        vip = next(line.split("/")[0].strip() for line in block.splitlines() if "/32 dev" in line)
        out[vip] = words
    return out


def test_keepalived_runs_every_vhid_with_carps_master_down_time(bundles, need_tool) -> None:
    """The lab's default speaker: each vhid the node runs, VRRPv3, advert_int = advbase, and a
    priority whose VRRPv3 master-down time is CARP's 3 x advbase + advskew/256."""
    from mailring.speakers import vrrp_master_down_s

    keepalived = need_tool("keepalived")
    for node in RING.mail_nodes:
        root = bundles[node.name] / "etc/mailring"
        services = yaml.safe_load((root / "services.yaml").read_text())
        assert [a[0] for a in services["carp"] + services["carp-backup"]] == ["keepalived", "keepalived"]
        seen = {}
        for group in ("carp", "carp-backup"):
            conf = _settings((root / f"keepalived-{group}.conf").read_text())
            assert "vrrp_version 3" in conf and "nopreempt" not in conf  # preemption on, as CARP's
            res = run(keepalived, "--config-test", "-f", str(root / f"keepalived-{group}.conf"))
            assert res.returncode == 0, res.stderr
            seen.update(_vrrp_instances(conf))
        assert set(seen) == {str(v.address) for v in RING.vips_run_by(node.name)}
        for v in RING.vips_run_by(node.name):
            inst = seen[str(v.address)]
            assert int(inst["virtual_router_id"]) == v.vhid and int(inst["advert_int"]) == RING.advbase
            if v.owner == node.name:
                assert (inst["state"], inst["priority"]) == ("MASTER", "255")
            else:
                assert inst["state"] == "BACKUP"
                down = vrrp_master_down_s(int(inst["priority"]), RING.advbase)
                assert down == pytest.approx(RING.failover_bound_s(v, {v.owner} | {
                    n for n, s in v.backups if s < v.skew_of(node.name)}))


def test_templates_hold_no_address_port_or_vhid() -> None:
    ports = {str(p) for s in RING.services.values() for p in (s.port, s.proxy_port) if p}
    ports |= {str(RING.dns.port), str(RING.dns.authoritative_port)}
    ip = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
    for path in sorted(PROVISION.glob("*/**/*.j2")) + sorted(PROVISION.glob("*/*.yaml")):
        text = path.read_text()
        assert not [m for m in ip.findall(text) if not m.startswith("127.")], path
        for port in ports:
            assert not re.search(rf"(?<![\w.$-]){port}(?![\w.])", text), (path, port)


def test_configs_follow_the_topology(tmp_path) -> None:
    """Move the whole cluster to another network: no old address survives in any config."""
    data = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    text = yaml.safe_dump(data).replace("192.168.56.", "10.77.0.")
    moved = tmp_path / "moved.yaml"
    moved.write_text(text)
    roots = render(load(moved), "debian", tmp_path / "out")
    for root in roots.values():
        for f in root.rglob("*"):
            if f.is_file() and f.suffix not in (".pem", ".crt", ".key"):
                assert "192.168.56." not in f.read_text(), f


def test_render_cli_writes_all_bundles(tmp_path, capsys) -> None:
    assert main(["render", "--flavour", "debian", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= set(RING.nodes)


def test_haproxy_logs_the_hop_and_checks_speak_and_close_each_protocol(bundles) -> None:
    cfg = (bundles["mail01"] / "etc/haproxy/haproxy.cfg").read_text()
    formats = [line for line in cfg.splitlines() if line.strip().startswith("log-format")]
    assert len(formats) == 1 + sum(s.protocol == "http" for s in RING.services.values())
    assert all("%bi:%bp" in f for f in formats)
    options = {line.strip() for line in cfg.splitlines() if line.strip().startswith("option")}
    assert "option log-health-checks" not in options and "option tcplog" not in options
    assert "tcp-check send QUIT\\r\\n" in cfg and "tcp-check send c\\ LOGOUT\\r\\n" in cfg
    assert "hdr User-Agent mailring-haproxy-check" in cfg
    for svc in RING.services.values():  # TLS front ends follow their plain service's checks
        if svc.tls:
            assert f"track be_{svc.backend}/mail02" in cfg, svc.name
    nginx = (bundles["mail01"] / "etc/nginx/nginx.conf").read_text()
    assert '"1:mailring-haproxy-check" 0;' in nginx and "if=$mailring_loggable" in nginx


def test_checks_run_at_the_topologys_three_intervals(bundles, tmp_path) -> None:
    """inter at rest, fastinter while a change is confirmed, downinter while DOWN; a topology
    that leaves the last two out gets inter for them, as HAProxy's own defaults."""
    h = RING.haproxy
    line = (f"default-server inter {h.check_interval_ms}ms fastinter {h.fast_interval_ms}ms "
            f"downinter {h.down_interval_ms}ms fall {h.fall} rise {h.rise}")
    assert line in (bundles["mail01"] / "etc/haproxy/haproxy.cfg").read_text()
    data = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    del data["haproxy"]["fast_interval_ms"], data["haproxy"]["down_interval_ms"]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(data))
    plain = render(load(tmp_path / "plain.yaml"), "debian", tmp_path / "out")["mail01"]
    cfg = plain / "etc/haproxy/haproxy.cfg"
    inter = f"{h.check_interval_ms}ms"
    assert f"inter {inter} fastinter {inter} downinter {inter} " in cfg.read_text()


def test_backups_are_checked_at_the_backup_interval_and_the_local_server_at_inter(bundles, tmp_path) -> None:
    h = RING.haproxy
    assert h.backup_ms != h.check_interval_ms, "topology.yaml sets its own backup interval"
    cfg = (bundles["mail01"] / "etc/haproxy/haproxy.cfg").read_text()
    servers = [line.split() for line in cfg.splitlines()
               if line.strip().startswith("server ") and " check" in line]
    assert servers
    for words in servers:
        backup = "backup" in words
        assert (f"{h.backup_ms}ms" in words) == backup, words  # the local one: default-server's inter
        assert ("inter" in words) == backup, words
    data = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    del data["haproxy"]["backup_interval_ms"]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(data))
    plain = render(load(tmp_path / "plain.yaml"), "debian", tmp_path / "out")["mail01"]
    lines = (plain / "etc/haproxy/haproxy.cfg").read_text().splitlines()
    assert not [line for line in lines if line.strip().startswith("server ") and " inter " in line]


def test_client_aliases_are_added_at_boot(bundles) -> None:
    services = yaml.safe_load((bundles["client01"] / "etc/mailring/services.yaml").read_text())
    argv = services["aliases"][0]
    want = [f"{a}/{RING.network.prefixlen}" for a in RING.client.aliases]
    assert argv[-len(want):] == want and "ip -4 addr replace" in argv[2]
    mail = yaml.safe_load((bundles["mail01"] / "etc/mailring/services.yaml").read_text())
    assert "aliases" not in mail


def test_noproxy_bundles_have_no_proxy_listener(tmp_path, need_tool) -> None:
    topo = load(DEFAULT_TOPOLOGY.parent / "topology-noproxy.yaml")
    root = render(topo, "debian", tmp_path)["mail02"]
    cfg = (root / "etc/haproxy/haproxy.cfg").read_text()
    assert "send-proxy" not in cfg
    for svc in topo.services.values():
        if svc.proxy_port:
            assert str(svc.proxy_port) not in cfg and str(svc.proxy_port) not in (
                root / "etc/postfix/master.cf").read_text()
    assert "haproxy" not in (root / "etc/dovecot/dovecot.conf").read_text()
    cfg = mapped_ca(cfg.replace("/etc/haproxy/certs", str(root / "etc/haproxy/certs")), root)
    (tmp_path / "h.cfg").write_text(cfg)
    res = run(need_tool("haproxy"), "-c", "-f", str(tmp_path / "h.cfg"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_balance_source_sends_the_client_and_its_alias_to_two_different_backups() -> None:
    from mailring.render.context import source_hash_backup

    owner = RING.vips[0].owner
    sources = (RING.client.address, *RING.client.aliases)
    picks = {str(a): source_hash_backup(RING, owner, str(a)) for a in sources}
    assert picks == {"192.168.56.100": "mail02", "192.168.56.201": "mail03"}  # .100 % 4 = 0, .201 % 4 = 1
    assert source_hash_backup(RING, owner, "192.168.56.200") == "mail02"  # why the alias is not .200


def test_mail_nodes_get_a_packet_filter_for_the_proxy_ports(bundles, need_tool) -> None:
    """nftables: only mail nodes (their addresses and VIPs) reach a PROXY port; nft accepts it."""
    nft = need_tool("nft")
    ports = sorted(s.proxy_port for s in RING.services.values() if s.daemon and s.proxy_port)
    for node in RING.mail_nodes:
        path = bundles[node.name] / "etc/mailring/nftables.conf"
        text = path.read_text()
        rule = re.search(r"tcp dport \{ ([\d, ]+) \} ip saddr != @mail_nodes .*reject", text)
        assert rule and [int(p) for p in rule.group(1).split(", ")] == ports, text
        allowed = re.search(r"elements = \{ ([^}]*) \}", text).group(1).split(", ")
        assert set(allowed) == {str(n.address) for n in RING.mail_nodes} | {str(v.address) for v in RING.vips}
        assert str(RING.client.address) not in text
        res = run(nft, "-c", "-f", str(path))  # -c: check only, nothing is loaded
        assert res.returncode == 0, res.stderr
    assert not (bundles["client01"] / "etc/mailring/nftables.conf").exists()


def test_haproxy_public_binds_never_read_a_proxy_header(bundles) -> None:
    for node in RING.mail_nodes:
        cfg = (bundles[node.name] / "etc/haproxy/haproxy.cfg").read_text()
        binds = [line for line in cfg.splitlines() if line.strip().startswith("bind ")]
        assert binds and not [b for b in binds if "accept-proxy" in b], binds


def test_vip_binds_send_from_a_vip_let_go_only_under_keepalived(tmp_path) -> None:
    """keepalived deletes a VIP from the node that lets it go (FreeBSD keeps a CARP address
    configured in BACKUP): its HAProxy binds are transparent, so a session accepted just
    before a handover still gets its answer out. ucarp's binds stay as they were."""
    for speaker, want in (("keepalived", True), ("ucarp", False)):
        root = render(RING, "debian", tmp_path / speaker, carp_speaker=speaker)["mail01"]
        cfg = (root / "etc/haproxy/haproxy.cfg").read_text()
        binds = [line.split() for line in cfg.splitlines() if line.startswith("    bind ")]
        assert binds and all(("transparent" in b) == want for b in binds), (speaker, binds[:2])
