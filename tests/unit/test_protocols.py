"""The protocol registry: a protocol added there reaches the schema, the rendered HAProxy
config, dovecot.conf's protocols, the probe's request table and the package lists."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from mailring import protocols
from mailring.checks.sweep import NAMED
from mailring.client import probe_request
from mailring.render import render
from mailring.topology import DEFAULT_TOPOLOGY, load

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "mailring" / "probe.py"
SIEVE = protocols.Protocol(
    "sieve", "dovecot", ("managesieve",),
    ("option tcp-check", 'tcp-check expect string "IMPLEMENTATION"', "tcp-check send LOGOUT\\r\\n"),
    greeting=r'"IMPLEMENTATION"', quit="LOGOUT\r\n", dovecot_protocol="sieve",
    packages={"debian": ("dovecot-managesieved",), "freebsd": ("dovecot-pigeonhole",)})


def _with_sieve(tmp_path: Path) -> Path:
    data = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    data["services"]["managesieve"] = {"port": 4190, "protocol": "sieve", "daemon": "dovecot",
                                       "proxy_port": 14190}
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_protocol_added_to_the_registry_reaches_haproxy_dovecot_the_probe_and_packages(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(protocols.PROTOCOLS, "sieve", SIEVE)
    topo = load(_with_sieve(tmp_path))
    assert topo.services["managesieve"].protocol == "sieve"
    render(topo, "debian", tmp_path / "out")
    node = topo.mail_nodes[0]
    cfg = (tmp_path / "out" / node.name / "etc" / "haproxy" / "haproxy.cfg").read_text()
    backend = cfg.split("backend be_managesieve\n", 1)[1].split("\nfrontend ", 1)[0]
    for line in SIEVE.haproxy_check:
        assert f"    {line}\n" in backend, backend
    assert f"server {node.name} {node.address}:14190 check check-send-proxy" in backend
    dovecot = (tmp_path / "out" / node.name / "etc" / "dovecot" / "dovecot.conf").read_text()
    assert "protocols = imap pop3 sieve\n" in dovecot
    table = json.loads(probe_request({"kind": "banner"}))["protocols"]
    assert table["sieve"] == {"greeting": SIEVE.greeting, "quit": SIEVE.quit}
    assert "dovecot-managesieved" in protocols.packages("debian")
    assert "dovecot-pigeonhole" in protocols.packages("freebsd", {"sieve"})


def test_the_probe_checks_a_new_protocols_greeting_from_the_request_alone(monkeypatch) -> None:
    monkeypatch.setitem(protocols.PROTOCOLS, "sieve", SIEVE)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        got: list[bytes] = []

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b'"IMPLEMENTATION" "Dovecot Pigeonhole"\r\n')
                got.append(conn.recv(64))

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        req = probe_request({"kind": "banner", "host": "127.0.0.1", "port": port, "protocol": "sieve",
                             "timeout": 5})
        res = subprocess.run([sys.executable, str(PROBE), req], capture_output=True, text=True, timeout=30)
        t.join(5)
    out = json.loads(res.stdout)
    assert out["ok"] and out["banner"].startswith('"IMPLEMENTATION"'), out
    assert got == [b"LOGOUT\r\n"]


def test_the_shipped_registry_matches_what_the_lab_and_the_scripts_install() -> None:
    from mailring.drivers.lab.preflight import TOOLS

    setup = (ROOT / "scripts" / "setup.sh").read_text()
    apt = setup.split("APT_PACKAGES=(", 1)[1].split(")", 1)[0].split()
    assert set(protocols.packages("debian")) <= set(apt), "scripts/setup.sh misses registry packages"
    box = (ROOT / "provision" / "boxes" / "packages.txt").read_text()
    baked = {w for line in box.splitlines() if not line.startswith("#") for w in line.split()}
    assert set(protocols.packages("debian")) <= baked, "the VM box misses registry packages"
    assert "nftables" in protocols.packages("debian") and "nft" in TOOLS  # the packet filter
    for d in protocols.DAEMONS.values():
        assert d.tool in TOOLS
    assert set(NAMED) == {"smtp", "pop3", "imap"}
    assert protocols.packages("freebsd", dovecot_version="2.4") == ["postfix", "dovecot24", "nginx"]
