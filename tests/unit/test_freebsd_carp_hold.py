"""The FreeBSD CARP hold: rc.d/mailring_carp, as rendered, run with stand-ins.

/boot/loader.conf keeps net.inet.carp.allow=0 from boot; the rendered rc.d
script must come after the daemons in rcorder (REQUIRE) and set the sysctl to
1 only when every daemon answers its protocol and HAProxy sees the node's own
server UP. Here it runs under sh with a minimal rc.subr (load_rc_config,
run_rc_command) and stand-in nc, socat and sysctl on PATH.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mailring.render import render
from mailring.topology import load

REPO = Path(__file__).resolve().parents[2]
TOPO = load(REPO / "fixtures" / "topology.yaml")
NODE = "mail02"
BANNERS = {"smtp": "220 {fqdn} ESMTP", "pop3": "+OK Dovecot ready.", "imap": "* OK Dovecot ready.",
           "http": "HTTP/1.1 200 OK"}
RC_SUBR = """load_rc_config() { :; }
run_rc_command() { eval "cmd=\\${${1}_cmd}"; $cmd; }
"""
STUBS = {
    # nc -N -w 2 ADDR PORT: the reply line stored for PORT (nothing: no listener)
    "nc": 'cat >/dev/null; f="$STUB/port-$5"; [ -e "$f" ] && cat "$f"; exit 0',
    "socat": 'cat >/dev/null; cat "$STUB/show-stat"',
    "sysctl": 'if [ "$1" = -n ]; then cat "$STUB/allow"; else echo "${1#*=}" >"$STUB/allow"; fi',
}


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("freebsd")
    render(TOPO, "freebsd", out)
    return out / NODE / "usr/local/etc/rc.d/mailring_carp"


def show_stat(down: tuple[str, str] | None = None) -> str:
    """HAProxy `show stat` CSV: every backend with every node as a server (field 18 = status)."""
    lines = ["# pxname,svname," + ",".join(f"f{i}" for i in range(3, 18)) + ",status"]
    for svc in TOPO.services:
        for node in TOPO.mail_nodes:
            status = "DOWN" if down == (f"be_{svc}", node.name) else "UP"
            lines.append(",".join([f"be_{svc}", node.name] + [""] * 15 + [status]))
    return "\n".join(lines) + "\n"


@pytest.fixture
def node(tmp_path: Path, script: Path):
    """Run the rc script's verbs with stand-ins; every daemon answers and HAProxy sees all UP."""
    stub = tmp_path / "stub"
    (stub / "bin").mkdir(parents=True)
    for name, body in STUBS.items():
        (stub / "bin" / name).write_text("#!/bin/sh\n" + body + "\n")
        (stub / "bin" / name).chmod(0o755)
    (stub / "rc.subr").write_text(RC_SUBR)
    (stub / "allow").write_text("0\n")
    fqdn = f"{NODE}.{TOPO.domain}"
    for svc in TOPO.services.values():
        if svc.daemon:
            (stub / f"port-{svc.port}").write_text(BANNERS[svc.protocol].format(fqdn=fqdn) + "\r\n")
    (stub / "show-stat").write_text(show_stat())
    rc = tmp_path / "mailring_carp"
    rc.write_text(script.read_text().replace(". /etc/rc.subr", f'. "{stub}/rc.subr"'))

    def run(verb: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{stub / 'bin'}:{os.environ['PATH']}", "STUB": str(stub),
               "mailring_carp_timeout": "1"}
        return subprocess.run(["sh", str(rc), verb], capture_output=True, text=True, env=env,
                              timeout=30)

    run.stub = stub  # type: ignore[attr-defined]
    return run


def allow(node) -> str:
    return (node.stub / "allow").read_text().strip()


def test_rc_script_comes_after_the_daemons(script: Path) -> None:
    head = script.read_text().splitlines()[:6]
    assert "# PROVIDE: mailring_carp" in head
    require = next(ln for ln in head if ln.startswith("# REQUIRE:")).split()[2:]
    # the ports' rc.d scripts PROVIDE these names; nginx serves the webmail
    assert sorted(require) == ["dovecot", "haproxy", "nginx", "postfix"]
    assert "# KEYWORD: shutdown" in head  # stop runs first at shutdown: CARP off before daemons
    assert os.access(script, os.X_OK)


def test_carp_goes_on_when_every_daemon_answers(node) -> None:
    res = node("start")
    assert res.returncode == 0, res.stderr
    assert allow(node) == "1"
    assert node("status").returncode == 0


@pytest.mark.parametrize("protocol", ["smtp", "pop3", "imap", "http"])
def test_carp_stays_off_while_a_daemon_is_silent(node, protocol: str) -> None:
    port = next(s.port for s in TOPO.services.values() if s.daemon and s.protocol == protocol)
    (node.stub / f"port-{port}").unlink()
    res = node("start")
    assert res.returncode == 1
    assert f"{protocol} on {TOPO.node(NODE).address}:{port} does not answer" in res.stderr
    assert allow(node) == "0"
    assert node("status").returncode == 1


def test_carp_stays_off_while_haproxy_sees_the_node_down(node) -> None:
    (node.stub / "show-stat").write_text(show_stat(down=("be_imap", NODE)))
    res = node("start")
    assert res.returncode == 1 and "HAProxy does not see" in res.stderr, res.stderr
    assert allow(node) == "0"
    # another node's server being down is not this node's business
    (node.stub / "show-stat").write_text(show_stat(down=("be_imap", "mail05")))
    assert node("start").returncode == 0 and allow(node) == "1"


def test_stop_turns_carp_off(node) -> None:
    assert node("start").returncode == 0
    assert node("stop").returncode == 0 and allow(node) == "0"



def test_the_rc_script_finds_pkg_tools_at_boot(script: Path) -> None:
    # /etc/rc runs rc.d scripts with PATH=/sbin:/bin:/usr/sbin:/usr/bin; socat is pkg's
    text = script.read_text()
    path_line = text.index('PATH="$PATH:/usr/local/sbin:/usr/local/bin"')
    assert path_line < text.index("socat -t")
