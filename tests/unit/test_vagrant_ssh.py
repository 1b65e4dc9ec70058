"""The vagrant driver's SSH transport against a real SSH server (paramiko, in this process):
exit codes, stdin, one reused connection per node, timeouts and dead hosts as transport
errors, and a background command stopped by closing its stdin."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from mailring.cluster import TransportError
from mailring.drivers.vagrant.ssh import Ssh


# -- the SSH transport against a real SSH server (paramiko, in this process) ----
@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    paramiko = pytest.importorskip("paramiko")
    host_key = paramiko.RSAKey.generate(2048)
    user_key = paramiko.RSAKey.generate(2048)
    key_file = tmp_path_factory.mktemp("ssh") / "id_rsa"
    user_key.write_private_key_file(str(key_file))
    transports: list = []

    class Server(paramiko.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "publickey"

        def check_auth_publickey(self, username: str, key) -> int:
            ok = key.get_base64() == user_key.get_base64()
            return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

        def check_channel_request(self, kind: str, chanid: int) -> int:
            return paramiko.OPEN_SUCCEEDED

        def check_channel_exec_request(self, channel, command: bytes) -> bool:
            threading.Thread(target=execute, args=(channel, command.decode()), daemon=True).start()
            return True

    def execute(channel, command: str) -> None:
        assert command.startswith("sudo -n ")  # a passwordless sudo, as on Vagrant boxes
        proc = subprocess.Popen(["sh", "-c", command[len("sudo -n "):]], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def feed() -> None:
            while data := channel.recv(4096):
                proc.stdin.write(data)
                proc.stdin.flush()
            proc.stdin.close()

        threading.Thread(target=feed, daemon=True).start()
        err = threading.Thread(target=lambda: channel.sendall_stderr(proc.stderr.read()))
        err.start()
        try:
            while data := proc.stdout.read1(4096):
                channel.sendall(data)
            err.join()
            channel.send_exit_status(proc.wait())
        except OSError:  # the client hung up (a timeout test)
            proc.kill()
        channel.close()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            t = paramiko.Transport(sock)
            t.add_server_key(host_key)
            t.start_server(server=Server())
            transports.append(t)

    threading.Thread(target=serve, daemon=True).start()
    conf = {"HostName": "127.0.0.1", "Port": str(listener.getsockname()[1]), "User": "vagrant",
            "IdentityFile": str(key_file)}
    yield conf, transports
    listener.close()
    for t in transports:
        t.close()


def test_ssh_runs_commands_and_reuses_one_connection(sshd) -> None:
    conf, _ = sshd
    ssh = Ssh(lambda node: conf)
    res = ssh.run("mail01", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")
    first = ssh._clients["mail01"].get_transport()
    assert ssh.run("mail01", ["cat"], input="hello\n").stdout == "hello\n"
    assert ssh._clients["mail01"].get_transport() is first
    ssh.forget()


def test_ssh_timeouts_and_dead_hosts_are_transport_errors(sshd) -> None:
    conf, _ = sshd
    ssh = Ssh(lambda node: conf)
    with pytest.raises(TransportError, match="did not finish"):
        ssh.run("mail01", ["sleep", "5"], timeout=0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    dead = Ssh(lambda node: {**conf, "Port": str(closed_port)})
    with pytest.raises(TransportError, match="cannot connect"):
        dead.run("mail02", ["true"])
    ssh.forget()


def test_ssh_running_command_stops_on_eof(sshd) -> None:
    conf, _ = sshd
    ssh = Ssh(lambda node: conf)
    running = ssh.start("client01", ["sh", "-c", "echo started; cat; echo done"])
    for _ in range(100):
        if running.peek():
            break
        time.sleep(0.05)
    assert running.peek() == "started\n"
    res = running.stop(timeout=5)
    assert (res.rc, res.stdout) == (0, "started\ndone\n")
    ssh.forget()


def test_the_probe_agent_answers_over_one_ssh_channel(sshd, serve) -> None:
    from probe_servers import PROBE, banner

    from mailring.agent import ProbeAgent
    from mailring.client import with_protocols

    conf, _ = sshd
    ssh = Ssh(lambda node: conf)
    servers = [serve(banner(f"220 server{i} ESMTP\r\n".encode())) for i in range(3)]
    agent = ProbeAgent(ssh.open_pipe("client01", ["python3", PROBE, "--serve"]), "client01")
    try:
        for i, srv in enumerate(servers * 2):  # one process, one channel, many requests
            out = agent.request(with_protocols({"kind": "banner", "host": "127.0.0.1", "port": srv.port,
                                                "protocol": "smtp", "timeout": 5}), timeout=30)
            assert out["ok"] and out["banner"] == f"220 server{i % 3} ESMTP", out
        assert sum(len(s.peers) for s in servers) == 6
    finally:
        assert agent.close(timeout=10) == 0
    assert not agent.alive
    ssh.forget()


# -- status()'s address reads through one kept loop per node (mailring.drivers.vagrant.holdings)
def test_holdings_reader_reads_fresh_output_through_one_kept_loop(sshd, tmp_path) -> None:
    from mailring.drivers.vagrant.holdings import HoldingsReader

    conf, _ = sshd
    ssh = Ssh(lambda node: conf)
    addrs = tmp_path / "addrs"
    reader = HoldingsReader(lambda n, argv: ssh.open_pipe(n, argv, timeout=5),
                            ["cat", str(addrs)], 5)
    addrs.write_text("192.168.56.101\n192.168.56.106\n")
    assert reader.read("mail01") == "192.168.56.101\n192.168.56.106\n"
    loop = reader._pipes["mail01"]
    addrs.write_text("192.168.56.101\n")  # the VIP moved: the next read says so
    assert reader.read("mail01") == "192.168.56.101\n"
    assert reader._pipes["mail01"] is loop  # the same loop, no new session
    ssh.forget("mail01")  # the connection went (a crash): the next read opens a new loop
    assert reader.read("mail01") == "192.168.56.101\n"
    assert reader._pipes["mail01"] is not loop
    reader.forget()
    ssh.forget()


def test_holdings_reader_gives_a_transport_error_when_a_read_stalls(sshd) -> None:
    from mailring.drivers.vagrant.holdings import HoldingsReader

    conf, _ = sshd
    ssh = Ssh(lambda node: conf)
    reader = HoldingsReader(lambda n, argv: ssh.open_pipe(n, argv, timeout=0.3),
                            ["sleep", "5"], 0.3)
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="mail02: the address loop ended"):
        reader.read("mail02")
    assert time.monotonic() - t0 < 3  # two tries of 0.3 s, not the command's 5 s
    assert "mail02" not in reader._pipes
    reader.forget()
    ssh.forget()
