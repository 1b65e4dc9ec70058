"""Run a command with libvirtd, its networks, the VMs and Vagrant inside a network namespace.

    python -m mailring.drivers.vagrant.confine --lab LAB -- COMMAND ...

How the VM smoke run and CI confine VMs on a machine like ours (FACTS.md §11):
a namespace ``mr-<lab>-vm`` made for the run holds virtlogd and libvirtd (so
their networks' bridges, dnsmasq and the VMs' taps live there), and COMMAND
(Vagrant, pytest and its SSH connections) runs inside it too, so the host's
own namespace gets no interface, address or route on any VM network and no VM
traffic can leave the machine. A watcher checks the host namespace every
second and fails the run if a VM address or device shows up there.

Everything the run creates is recorded in ``/run/mailring/confine-<lab>.json``
before it is created and removed at the end by name and PID (domains
``<lab>-*``, networks ``mr-<lab>*``, the storage pool ``mr-<lab>`` and its
volumes, the daemons, the namespace), also on failure and Ctrl-C; the next run
removes what a SIGKILLed one left. Only one libvirtd can run per machine
(its socket is global): another one running is refused with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

from mailring.drivers.vagrant.residue import HostWatch, leftovers, on_disk, zombie
from mailring.errors import InputError

STATE_DIR = Path("/run/mailring")
URI = "qemu:///system"
PIDFILES = {"libvirtd": Path("/run/libvirtd.pid"), "virtlogd": Path("/run/virtlogd.pid")}
TOOLS = {"ip": "iproute2", "libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon-system",
         "virsh": "libvirt-clients", "qemu-system-x86_64": "qemu-system-x86",
         "vagrant": "vagrant vagrant-libvirt"}
# VM networks that must never appear in the host namespace: the cluster network of the
# topologies and vagrant-libvirt's management network (Vagrantfile, MAILRING_LIBVIRT_MGMT_NET)
MGMT_NETWORK = "192.168.121.0/24"
SBIN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Names:
    """Everything of one confined run, found by name."""

    lab: str
    build: Path

    @property
    def netns(self) -> str:
        return f"mr-{self.lab}-vm"

    @property
    def pool(self) -> str:
        return f"mr-{self.lab}"

    @property
    def pool_dir(self) -> Path:
        return self.build / self.lab / "libvirt-pool"

    @property
    def vagrant_home(self) -> Path:
        return self.build / self.lab / "vagrant.d"

    @property
    def state(self) -> Path:
        return STATE_DIR / f"confine-{self.lab}.json"

    def domain(self, name: str) -> bool:
        return name.startswith(f"{self.lab}-")

    def network(self, name: str) -> bool:
        return name == f"mr-{self.lab}" or name.startswith(f"mr-{self.lab}-")


def say(msg: str) -> None:
    print(f"confine: [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PATH": SBIN})
    if check and res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"`{' '.join(argv)}` exited {res.returncode}: {tail[0]}")
    return res


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("virsh", "-q", "-c", URI, *args, check=check)


def pid_of(name: str) -> int | None:
    """The PID in a daemon's pid file when that process is alive and is that daemon."""
    try:
        pid = int(PIDFILES[name].read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid if comm == name else None


def running(name: str) -> list[int]:
    res = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split()]


def daemon_argv(daemon: str) -> list[str]:
    """How to start a daemon (inside the namespace): under ``reaper``, a child subreaper that
    reaps what the daemon's tree leaves (PID 1 of a container may not, and libvirt then
    re-probes QEMU for a minute on every domain change)."""
    return [sys.executable, "-m", "mailring.drivers.vagrant.reaper", daemon, "-d"]


def check_host(names: Names, mine: dict[str, int]) -> None:
    """Root, the tools, and no libvirtd but one this lab started (refuse clearly; touch nothing)."""
    if os.geteuid() != 0:
        raise InputError("confining VMs needs root (a network namespace, libvirtd); run as root")
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool, path=SBIN) is None})
    if missing:
        raise InputError(f"missing tools; install them with: apt-get install -y {' '.join(missing)} "
                         "(scripts/setup.sh installs them all)")
    others = [p for p in running("libvirtd") if p != mine.get("libvirtd")]
    if others:
        raise InputError(f"a libvirtd (pid {', '.join(map(str, others))}) not started by lab "
                         f"{names.lab} is running; only one libvirtd can run per machine (its socket "
                         "/run/libvirt is global): stop it, or run the VM smoke where none runs")


def stop_pid(pid: int, name: str, grace_s: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        if zombie(pid):
            return
        time.sleep(0.1)
    say(f"{name} (pid {pid}) ignored SIGTERM for {grace_s:.0f} s; SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Confinement:
    names: Names
    pids: dict[str, int] = field(default_factory=dict)
    reapers: list[subprocess.Popen] = field(default_factory=list)

    # -- record ---------------------------------------------------------------
    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.names.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"lab": self.names.lab, "netns": self.names.netns,
                                   "pool": self.names.pool, "pids": self.pids}))
        tmp.replace(self.names.state)

    def load(self) -> bool:
        try:
            data = json.loads(self.names.state.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        self.pids = {k: int(v) for k, v in data.get("pids", {}).items()}
        return True

    def netns_exists(self) -> bool:
        return self.names.netns in sh("ip", "netns", "list").stdout.split()

    # -- bring up -------------------------------------------------------------
    def start_daemons(self) -> None:
        ns = self.names.netns
        if not self.netns_exists():
            sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for daemon in ("virtlogd", "libvirtd"):
            pid = pid_of(daemon)
            if pid is None:
                self.reapers.append(subprocess.Popen(  # noqa: S603 - a daemon, waited in teardown
                    ["ip", "netns", "exec", ns, *daemon_argv(daemon)], stdin=subprocess.DEVNULL,
                    start_new_session=True, env={**os.environ, "PATH": SBIN}))
                pid = self._wait_pid(daemon)
            self.pids[daemon] = pid
            self.save()
        end = time.monotonic() + 30
        while virsh("version", check=False).returncode != 0:
            if time.monotonic() > end:
                raise RuntimeError("libvirtd did not answer `virsh version` within 30 s")
            time.sleep(0.2)

    def _wait_pid(self, daemon: str) -> int:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            pid = pid_of(daemon)
            if pid is not None:
                return pid
            time.sleep(0.1)
        raise RuntimeError(f"{daemon} wrote no pid file {PIDFILES[daemon]} within 15 s")

    def make_pool(self) -> None:
        pool, target = self.names.pool, self.names.pool_dir
        target.mkdir(parents=True, exist_ok=True)
        virsh("pool-define-as", pool, "dir", "--target", str(target))
        virsh("pool-start", pool)

    def up(self) -> None:
        self.save()  # the record exists before anything it names does
        t0 = time.monotonic()
        self.start_daemons()
        # libvirt's packaged NAT network "default" may autostart: it has a <forward>, so stop it
        # in this libvirtd (its definition stays as the package left it)
        if "default" in self._list("net-list", "--name"):
            virsh("net-destroy", "default", check=False)
        self.make_pool()
        say(f"libvirtd (pid {self.pids['libvirtd']}) in namespace {self.names.netns}, "
            f"pool {self.names.pool}: {time.monotonic() - t0:.1f} s")

    def env(self) -> dict[str, str]:
        """What the confined command needs to drive this libvirtd and pool."""
        return {
            # the command's mailring runs use this lab name, so their libvirt domains are
            # <lab>-<node> and the teardown finds them (pytest's default lab would not match)
            "MAILRING_LAB": self.names.lab,
            "MAILRING_CONFINED": self.names.netns,
            "MAILRING_LIBVIRT_POOL": self.names.pool,
            "MAILRING_LIBVIRT_DRIVER": "qemu",  # TCG: /dev/kvm here is a nested software KVM
            "MAILRING_LIBVIRT_MGMT": "none",  # isolated: the box holds every package
            "LIBVIRT_DEFAULT_URI": URI,
            "VAGRANT_HOME": str(self.names.vagrant_home),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        }

    # -- tear down ------------------------------------------------------------
    def teardown(self) -> list[str]:
        """Remove everything of this lab: domains, networks, volumes, pool, daemons, namespace.

        Returns the problems met (each step still runs)."""
        problems: list[str] = []
        t0 = time.monotonic()

        def attempt(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                problems.append(f"{what}: {exc}")

        if pid_of("libvirtd") is None and (self.netns_exists() or on_disk(self.names)):
            attempt("start libvirtd to clean up", self.start_daemons)
        if pid_of("libvirtd") is not None:
            for dom in self._list("list", "--all", "--name"):
                if self.names.domain(dom):
                    virsh("destroy", dom, check=False)
                    attempt(f"undefine {dom}", lambda d=dom: virsh(
                        "undefine", d, "--snapshots-metadata", "--managed-save",
                        "--remove-all-storage"))
            for net in self._list("net-list", "--all", "--name"):
                if self.names.network(net):
                    virsh("net-destroy", net, check=False)
                    attempt(f"net-undefine {net}", lambda n=net: virsh("net-undefine", n))
            if self.names.pool in self._list("pool-list", "--all", "--name"):
                virsh("pool-start", self.names.pool, check=False)  # an inactive pool lists no volumes
                for vol in [line.split()[0] for line in self._list("vol-list", self.names.pool)]:
                    attempt(f"vol-delete {vol}",
                            lambda v=vol: virsh("vol-delete", "--pool", self.names.pool, v))
                virsh("pool-destroy", self.names.pool, check=False)
                attempt("pool-undefine", lambda: virsh("pool-undefine", self.names.pool))
        for daemon in ("libvirtd", "virtlogd"):
            pid = pid_of(daemon)
            if pid is not None and pid == self.pids.get(daemon, pid):
                stop_pid(pid, daemon)
            if pid_of(daemon) is None:
                PIDFILES[daemon].unlink(missing_ok=True)
        for reaper in self.reapers:  # they end once the daemons' trees are gone
            try:
                reaper.wait(15)
            except subprocess.TimeoutExpired:
                problems.append(f"reaper {reaper.pid} still has processes to wait for")
        if self.netns_exists():
            attempt("ip netns del", lambda: sh("ip", "netns", "del", self.names.netns))
        shutil.rmtree(self.names.pool_dir, ignore_errors=True)
        # the run's Vagrant home (its box copy): the next run adds the box it builds or reuses
        shutil.rmtree(self.names.vagrant_home, ignore_errors=True)
        if not problems:
            self.names.state.unlink(missing_ok=True)
        say(f"removed lab {self.names.lab}'s VMs, networks, pool, daemons and namespace "
            f"in {time.monotonic() - t0:.1f} s" + (f"; problems: {'; '.join(problems)}" if problems else ""))
        return problems

    def _list(self, *args: str) -> list[str]:
        return [line.strip() for line in virsh(*args, check=False).stdout.splitlines() if line.strip()]



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mailring.drivers.vagrant.confine",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--lab", default=os.environ.get("MAILRING_LAB", "mailring"))
    p.add_argument("--build", default=str(Path(__file__).resolve().parents[3] / "build"))
    p.add_argument("--network", action="append", default=[],
                   help="a VM network that must not show in the host namespace (repeatable)")
    p.add_argument("--clean", action="store_true", help="only remove what a previous run left")
    p.add_argument("command", nargs="*")
    args = p.parse_args(argv)
    names = Names(args.lab, Path(args.build).resolve())
    conf = Confinement(names)
    had_record = conf.load()
    try:
        check_host(names, conf.pids)
        networks = [IPv4Network(n) for n in [*args.network, MGMT_NETWORK]]
    except (InputError, ValueError) as exc:
        print(f"mailring: {exc}", file=sys.stderr)
        return 2
    if had_record or conf.netns_exists() or on_disk(names):
        say(f"removing what an earlier run of lab {names.lab} left")
        if conf.teardown():
            print(f"mailring: could not remove lab {names.lab}'s leftovers (above); fix by hand",
                  file=sys.stderr)
            return 1
        conf.pids = {}
    if args.clean:
        return 0
    if not args.command:
        print("mailring: confine: give a command after --", file=sys.stderr)
        return 2
    watch = HostWatch(networks)
    rc = 1
    interrupted = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        conf.up()
        watch.start()
        # its own process group, so an interrupt reaches Vagrant and everything it started
        child = subprocess.Popen(["ip", "netns", "exec", names.netns, *args.command],
                                 env={**os.environ, **conf.env()}, start_new_session=True)
        try:
            rc = child.wait()
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted: waiting for the command to stop")
            try:
                os.killpg(child.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                child.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            rc = 130
    except KeyboardInterrupt:
        interrupted, rc = True, 130
    except RuntimeError as exc:
        print(f"mailring: confine: {exc}", file=sys.stderr)
        rc = 1
    finally:
        watch.stop()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        problems = conf.teardown()
    if watch.seen:
        print(f"mailring: confinement broken: the host namespace showed {'; '.join(watch.seen)}",
              file=sys.stderr)
        rc = rc or 1
    else:
        say(f"host namespace clean in {watch.checks} checks (at start, once a second, at the end)")
    left = leftovers(names, conf.pids)
    if left:
        print(f"mailring: confine: lab {names.lab} left behind after its teardown: "
              f"{'; '.join(left)}", file=sys.stderr)
        rc = rc or 1
    else:
        say(f"nothing of lab {names.lab} left: no domain, network, pool, QEMU, libvirtd, "
            "virtlogd or namespace")
    if problems:
        rc = rc or 1
    return 130 if interrupted else rc


if __name__ == "__main__":
    sys.exit(main())
