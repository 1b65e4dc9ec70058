"""PID 1 of a lab node: mounts the node's own files, starts its daemons, supervises them.

Started by the driver as ``ip netns exec <ns> unshare --mount --pid --uts
--fork --mount-proc python -m mailring.drivers.lab.init <disk> <bundle>
<store> <control> [--hold S,S] [--after-listening S=ADDR:PORT,ADDR:PORT]``. It overlays the node's
writable layers on /etc and /var (the rendered bundle is the upper /etc), puts a fresh
tmpfs on /run as a boot would, mounts the shared mail store, sets the hostname, then starts
every service of ``/etc/mailring/services.yaml`` in its own process group, output to
``/var/log/<service>.log``: those named by ``--hold`` wait for a start request, those named
by ``--after-listening`` wait (bounded) until a listening socket takes connections to each of
their addresses and ports (a boot's service order: HAProxy after the daemons it checks). A
boot's Postfix skips postfix-script's installation scans; after a crash its queue repair runs first
(``quickstart``). A JSON-lines control socket lets the driver stop, start, pause (SIGSTOP),
resume (SIGCONT) and list services.
Killing this process is a power cut:
the kernel kills every process of the PID namespace at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from mailring.drivers.lab import quickstart
from mailring.drivers.lab.listening import Target, accepting

STOP_GRACE_S = 5.0
# how long a service started --after-listening waits for its ports; then it starts anyway (the
# lab's readiness wait names what does not answer)
AFTER_LISTENING_S = 30.0
LISTEN_POLL_S = 0.02


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def mount_layers(disk: Path, bundle: Path, store: Path, hostname: str) -> None:
    """The node's own filesystem. Host paths (store, repo) are opened before the overlays,
    so a checkout under /var still works."""
    store_fd = os.open(store, os.O_PATH | os.O_DIRECTORY) if store.is_dir() else None
    for top in ("etc", "var"):
        upper, work = disk / top, disk / "work" / top
        work.mkdir(parents=True, exist_ok=True)
        if top == "etc":
            # the rendered bundle's etc is copied into the node's own etc layer
            shutil.copytree(bundle / "etc", upper, dirs_exist_ok=True)
        upper.mkdir(parents=True, exist_ok=True)
        sh("mount", "-t", "overlay", f"mr-{top}", "-o",
           f"lowerdir=/{top},upperdir={upper},workdir={work}", f"/{top}")
    sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
    for sub in ("haproxy", "dovecot", "nginx"):
        os.makedirs(f"/run/{sub}", exist_ok=True)
    os.makedirs("/var/lib/nginx", exist_ok=True)
    os.makedirs("/var/log", exist_ok=True)
    if store_fd is not None:
        target = Path("/var/mail/vhosts")
        target.mkdir(parents=True, exist_ok=True)
        sh("mount", "--bind", f"/proc/{os.getpid()}/fd/{store_fd}", str(target))
        os.close(store_fd)
    sh("hostname", hostname)


class Supervisor:
    """The node's services: each a list of processes, each in its own process group."""

    def __init__(self, services: dict[str, list[list[str]]]) -> None:
        self.services = services
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.stopped: set[str] = set()
        self.paused: set[str] = set()
        self.lock = threading.Lock()

    def start(self, name: str, unless_stopped: bool = False) -> None:
        """Start a service (not if it runs; with ``unless_stopped``, not if a stop was asked for)."""
        with self.lock:
            if any(p.poll() is None for p in self.procs.get(name, [])):
                return
            if unless_stopped and name in self.stopped:
                return
            log = open(f"/var/log/{name}.log", "ab", buffering=0)  # noqa: SIM115
            self.procs[name] = [
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
                for argv in self.services[name]
            ]
            log.close()
            self.stopped.discard(name)

    def stop(self, name: str) -> None:
        """SIGTERM every process group of the service's process trees (daemons such as
        Postfix's master call setsid(), leaving their starter's group), then SIGKILL
        what is left after the grace period."""
        with self.lock:
            procs = self.procs.get(name, [])
            self.stopped.add(name)
        groups = set()
        for p in procs:
            if p.poll() is None:
                groups |= _groups_of_tree(p.pid)
        for g in groups:
            _signal_group(g, signal.SIGTERM)
            _signal_group(g, signal.SIGCONT)  # a paused daemon acts on SIGTERM only once continued
        with self.lock:
            self.paused.discard(name)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
            for p in procs:
                p.poll()
            time.sleep(0.02)
        for g in groups:
            _signal_group(g, signal.SIGKILL)
        for p in procs:
            p.wait()

    def pause(self, name: str, paused: bool) -> None:
        """SIGSTOP (or SIGCONT) every process group of the service's process trees: the
        processes and their open sockets stay, nothing they own answers (a hung server)."""
        with self.lock:
            procs = [p for p in self.procs.get(name, []) if p.poll() is None]
            groups = set()
            for p in procs:
                groups |= _groups_of_tree(p.pid)
            for g in groups:
                _signal_group(g, signal.SIGSTOP if paused else signal.SIGCONT)
            (self.paused.add if paused else self.paused.discard)(name)

    def status(self) -> dict[str, dict]:
        with self.lock:
            out = {}
            for name in self.services:
                procs = self.procs.get(name, [])
                out[name] = {
                    "running": bool(procs) and all(p.poll() is None for p in procs),
                    "exited": [p.returncode for p in procs if p.poll() is not None],
                    "stopped": name in self.stopped,
                    "paused": name in self.paused,
                }
            return out


def start_after_listening(sup: Supervisor, name: str, targets: set[Target],
                          deadline_s: float = AFTER_LISTENING_S,
                          listening_now: Callable[[set[Target]], set[Target]] = accepting) -> bool:
    """Start ``name`` once a listening socket takes connections to every one of ``targets``
    (address, port) (HAProxy after the daemons it checks: a check of a daemon that is not
    listening yet marks its server DOWN, and it comes back only after ``rise`` checks,
    ``inter`` apart), or once ``deadline_s`` has passed. A stop asked for meanwhile wins. True
    if the targets were all listening."""
    deadline = time.monotonic() + deadline_s
    while not (listening := targets <= listening_now(targets)) and time.monotonic() < deadline:
        time.sleep(LISTEN_POLL_S)
    sup.start(name, unless_stopped=True)
    return listening


def parse_options(args: list[str]) -> tuple[set[str], dict[str, set[Target]]]:
    """``--hold S,S`` and ``--after-listening S=ADDR:PORT,ADDR:PORT`` (repeatable): held
    services, and the addresses and ports each of the others waits for."""
    held: set[str] = set()
    after: dict[str, set[Target]] = {}
    if len(args) % 2:
        raise ValueError(f"options come in pairs: {args}")
    for opt, value in zip(args[::2], args[1::2], strict=True):
        if opt == "--hold":
            held |= set(value.split(","))
        elif opt == "--after-listening":
            name, _, targets = value.partition("=")
            after[name] = {_target(t) for t in targets.split(",") if t}
        else:
            raise ValueError(f"unknown option {opt!r}")
    return held, after


def _target(text: str) -> Target:
    address, sep, port = text.rpartition(":")
    if not sep or not address:
        raise ValueError(f"--after-listening wants ADDRESS:PORT, got {text!r}")
    return address, int(port)


def _groups_of_tree(root: int) -> set[int]:
    """Process groups of ``root`` and all its descendants (read from /proc)."""
    children: dict[int, list[int]] = {}
    pgid: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        pid, ppid, group = int(entry), int(fields[1]), int(fields[2])
        children.setdefault(ppid, []).append(pid)
        pgid[pid] = group
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in pgid:
            found.add(pgid[pid])
        todo.extend(children.get(pid, []))
    return found


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def listen(control: Path) -> socket.socket:
    """The control socket, bound on the host's filesystem before any overlay hides it."""
    if control.exists():
        control.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(control))
    srv.listen(8)
    return srv


def serve(sup: Supervisor, srv: socket.socket) -> None:
    def handle(conn: socket.socket) -> None:
        with conn, conn.makefile("rw") as f:
            for line in f:
                try:
                    req = json.loads(line)
                    op, name = req["op"], req.get("service")
                    if name is not None and name not in sup.services:
                        raise KeyError(f"no service {name!r} on this node")
                    if op == "stop":
                        sup.stop(name)
                    elif op == "start":
                        sup.start(name)
                    elif op in ("pause", "resume"):
                        sup.pause(name, op == "pause")
                    answer = {"ok": True, "services": sup.status()}
                except Exception as exc:  # answer, never die: this is PID 1
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                f.write(json.dumps(answer) + "\n")
                f.flush()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def reap_forever() -> None:
    """PID 1 adopts orphans: reap every child that is not a supervised service."""
    while True:
        time.sleep(0.5)
        with SUP.lock:
            ours = [p for ps in SUP.procs.values() for p in ps]
        for p in ours:
            p.poll()  # Popen reaps its own children
        ours_pids = {p.pid for p in ours if p.returncode is None}
        try:
            while (info := os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)):
                if info.si_pid in ours_pids:
                    break
                os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            pass


SUP: Supervisor


def main(argv: list[str]) -> int:
    global SUP
    disk, bundle, store, control = (Path(a) for a in argv[:4])
    held, after = parse_options(argv[4:])
    hostname = (bundle / "etc" / "hostname").read_text().strip().split(".")[0]
    srv = listen(control)
    fresh = not (disk / "var").exists()  # a boot after a crash finds its /var layer
    mount_layers(disk, bundle, store, hostname)
    os.environ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    os.environ["HOME"] = "/root"
    services = yaml.safe_load(Path("/etc/mailring/services.yaml").read_text()) or {}
    SUP = Supervisor({k: [[str(a) for a in argv] for argv in v] for k, v in services.items()})
    quickstart.own_log_file(services)  # postsuper, after a crash, logs to it as the mail owner
    quickstart.before_start(services, crashed=not fresh)
    signal.signal(signal.SIGTERM, lambda *_: _shutdown())
    for name in services:
        if name in after and name not in held:
            threading.Thread(target=start_after_listening, args=(SUP, name, after[name]),
                             daemon=True).start()
        elif name not in held:
            SUP.start(name)
    threading.Thread(target=reap_forever, daemon=True).start()
    serve(SUP, srv)
    return 0


def _shutdown() -> None:
    for name in list(SUP.services):
        SUP.stop(name)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
