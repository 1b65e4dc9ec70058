"""Commands on a VM over SSH: one reused paramiko connection per node, root via sudo.

``Ssh.run`` returns a ``Result`` for any exit code; a connection that cannot
be made, drops, or a command that outlives its timeout raises
``TransportError`` (a failed transport is never reported as a failed
command). paramiko is imported lazily, so the driver module imports without it.
"""

from __future__ import annotations

import collections
import shlex
import threading
import time
from collections.abc import Callable
from typing import Any

from mailring.cluster import Pipe, Result, Running, TransportError
from mailring.drivers.vagrant.keyed import KeyedLocks

# a TCG guest under load answers a connect in seconds, not milliseconds
CONNECT_TIMEOUT_S = 15.0
# Login shells on boxes differ (sh, bash; apply.sh turns csh into sh): quote
# for sh and give sudo a PATH that has the base system's and pkg's tools.
PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"


def remote_command(argv: list[str]) -> str:
    """The command line sent to sshd: argv as root, quoted for a POSIX shell."""
    return "sudo -n env PATH=" + PATH + " " + shlex.join(argv)


def connect_kwargs(conf: dict[str, str]) -> dict[str, Any]:
    """paramiko ``SSHClient.connect`` arguments from one ``vagrant ssh-config`` Host block."""
    keys = [conf["IdentityFile"]] if "IdentityFile" in conf else None
    return {
        "hostname": conf["HostName"],
        "port": int(conf.get("Port", "22")),
        "username": conf.get("User", "vagrant"),
        "key_filename": keys,
        "look_for_keys": False,
        "allow_agent": False,
        "timeout": CONNECT_TIMEOUT_S,
        "banner_timeout": CONNECT_TIMEOUT_S,
        "auth_timeout": CONNECT_TIMEOUT_S,
    }


class Ssh:
    """SSH connections to every node, made on first use from ``ssh_config(node)``.

    A node being connected to (a booting TCG guest takes seconds) holds only its
    own lock: commands on other nodes go on meanwhile.
    """

    def __init__(self, ssh_config: Callable[[str], dict[str, str]]) -> None:
        self._ssh_config = ssh_config
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # guards the dict only, never held while connecting
        self._node_lock = KeyedLocks()

    def forget(self, node: str | None = None) -> None:
        """Close and drop a node's connection (all when node is None), e.g. after a crash."""
        with self._lock:
            names = [node] if node else list(self._clients)
            clients = [self._clients.pop(name, None) for name in names]
        for client in clients:
            if client is not None:
                client.close()

    def _cached(self, node: str) -> Any:
        with self._lock:
            client = self._clients.get(node)
        transport = client.get_transport() if client else None
        return client if transport is not None and transport.is_active() else None

    def _client(self, node: str) -> Any:
        import paramiko

        client = self._cached(node)
        if client is not None:
            return client
        with self._node_lock(node):
            client = self._cached(node)  # another thread may have connected meanwhile
            if client is not None:
                return client
            try:
                conf = self._ssh_config(node)
            except Exception as exc:  # vagrant ssh-config fails for a machine that is not running
                raise TransportError(f"{node}: no SSH settings from vagrant ({exc})") from exc
            client = paramiko.SSHClient()
            # as Vagrant's UserKnownHostsFile /dev/null: each VM's host key is new
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect(**connect_kwargs(conf))
            except (paramiko.SSHException, OSError) as exc:
                client.close()
                raise TransportError(f"{node}: cannot connect over SSH to "
                                     f"{conf.get('HostName')}:{conf.get('Port')}: {exc}") from exc
            client.get_transport().set_keepalive(5)
            with self._lock:
                self._clients[node] = client
            return client

    def _channel(self, node: str, argv: list[str]) -> Any:
        import paramiko

        for attempt in (1, 2):  # a cached connection may be stale (VM rebooted): reconnect once
            client = self._client(node)
            try:
                chan = client.get_transport().open_session(timeout=CONNECT_TIMEOUT_S)
                chan.exec_command(remote_command(argv))
                return chan
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.forget(node)
                if attempt == 2:
                    raise TransportError(f"{node}: SSH session failed: {exc}") from exc
        raise AssertionError("unreachable")

    def run(self, node: str, argv: list[str], timeout: float = 60.0,
            input: str | None = None) -> Result:
        chan = self._channel(node, argv)
        try:
            if input is not None:
                chan.sendall(input.encode())
            chan.shutdown_write()
            out, err = _collect(chan, time.monotonic() + timeout)
        except TimeoutError as exc:
            chan.close()
            raise TransportError(f"{node}: {argv[0]} did not finish in {timeout} s") from exc
        except (OSError, EOFError) as exc:
            self.forget(node)
            raise TransportError(f"{node}: SSH connection lost during {argv[0]}: {exc}") from exc
        rc = chan.exit_status if chan.exit_status_ready() else -1
        chan.close()
        if rc == -1:  # sshd sent no exit status: the connection went away
            self.forget(node)
            raise TransportError(f"{node}: SSH connection lost during {argv[0]}")
        return Result(list(argv), rc, out, err)

    def start(self, node: str, argv: list[str]) -> SshRunning:
        return SshRunning(argv, self._channel(node, argv))

    def open_pipe(self, node: str, argv: list[str], timeout: float | None = None) -> SshPipe:
        """A line-talking command; with ``timeout``, a read that waits longer ends the pipe's
        stdout (readline returns "")."""
        chan = self._channel(node, argv)
        chan.settimeout(timeout)
        return SshPipe(argv, chan)


def _pump(chan: Any, out: bytearray, err: bytearray, deadline: float | None) -> bool:
    """Move a channel's stdout/stderr into buffers until the command ends or the channel closes.

    True when it ended or closed; False when ``deadline`` passed first. Data
    arrives before the exit status on an SSH channel, so once the status is in
    the buffers hold everything.
    """
    while True:
        busy = False
        if chan.recv_ready():
            out += chan.recv(65536)
            busy = True
        if chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            busy = True
        if busy:
            continue
        if chan.exit_status_ready() or chan.closed:
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _collect(chan: Any, deadline: float) -> tuple[str, str]:
    """A command's stdout and stderr once it ends; TimeoutError past the deadline."""
    out, err = bytearray(), bytearray()
    if not _pump(chan, out, err, deadline):
        raise TimeoutError
    return out.decode(errors="replace"), err.decode(errors="replace")


class SshRunning(Running):
    """A command left running on a node; its output is read in the background."""

    def __init__(self, argv: list[str], chan: Any) -> None:
        self.argv = argv
        self.chan = chan
        self.out = bytearray()
        self.err = bytearray()
        self.reader = threading.Thread(target=_pump, args=(chan, self.out, self.err, None),
                                       daemon=True)
        self.reader.start()

    def peek(self) -> str:
        return bytes(self.out).decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> Result:
        try:
            self.chan.shutdown_write()  # the command sees EOF on stdin
        except (OSError, EOFError):
            pass
        self.reader.join(timeout)
        if self.reader.is_alive():
            self.chan.close()  # sshd hangs up the command's session
            self.reader.join(1)
        rc = self.chan.exit_status if self.chan.exit_status_ready() else -1
        self.chan.close()
        return Result(list(self.argv), rc, self.out.decode(errors="replace"),
                      self.err.decode(errors="replace"))


class SshPipe(Pipe):
    """A command on a node over one SSH channel, talked to in lines (the probe agent)."""

    def __init__(self, argv: list[str], chan: Any) -> None:
        self.argv, self.chan = argv, chan
        self.out = chan.makefile("rb")
        self.err: collections.deque[str] = collections.deque(maxlen=50)
        self.err_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self.err_reader.start()

    def _drain_stderr(self) -> None:
        try:
            for line in self.chan.makefile_stderr("rb"):
                self.err.append(line.decode(errors="replace"))
        except (OSError, EOFError):
            pass

    def send(self, line: str) -> None:
        try:
            self.chan.sendall((line + "\n").encode())
        except (OSError, EOFError) as exc:
            raise TransportError(f"{self.argv[0]}: the SSH channel is gone: {exc}") from exc

    def readline(self) -> str:
        try:
            return self.out.readline().decode(errors="replace")
        except (OSError, EOFError):
            return ""

    def stderr(self) -> str:
        return "".join(list(self.err))

    def close(self, timeout: float = 10.0) -> int | None:
        try:
            self.chan.shutdown_write()  # the command sees EOF on stdin
        except (OSError, EOFError):
            pass
        if not self.chan.status_event.wait(timeout):
            self.chan.close()  # sshd hangs up the command's session
        rc = self.chan.exit_status if self.chan.exit_status_ready() else None
        self.chan.close()
        self.err_reader.join(1)
        return rc
