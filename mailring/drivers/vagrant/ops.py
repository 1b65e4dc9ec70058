"""What the vagrant driver runs for each operation, as pure functions of names and paths.

- services: mailring's service names -> FreeBSD rc.d scripts (``service X
  onestop/onestart``); ``carp`` is the node's whole CARP participation, switched
  with ``sysctl net.inet.carp.allow=0/1`` (0: every vhid of the node goes to
  INIT, stops advertising and answering for its VIPs, as a dead ucarp would;
  the aliases stay configured, so HAProxy keeps its binds);
- hang/resume: SIGSTOP/SIGCONT of an rc.d daemon's whole process tree, found
  from its script's status line (``freeze_argv``);
- crash: the provider's hard power-off (no ACPI, no clean shutdown); boot: the provider's
  power-on over the same disk;
- logs: which files hold a service's log on a node;
- the bundle digest that says whether the provisioned snapshot is current.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mailring.errors import InputError

# rc.d scripts behind each mailring service name, in start order.
RC_SCRIPTS = {
    "postfix": ("postfix",),
    "dovecot": ("dovecot",),
    "haproxy": ("haproxy",),
    "webmail": ("nginx",),
    "dns": ("nsd", "unbound"),
}
ROLE_SERVICES = {"mail": ("postfix", "dovecot", "haproxy", "webmail", "carp"), "client": ("dns",)}
# Daemons that must run on a node before it counts as ready (rc.d names, start order).
READY_SCRIPTS = {"mail": ("dovecot", "postfix", "haproxy", "nginx"), "client": ("nsd", "unbound")}
LOG_FILES = {
    "postfix": ("postfix.log",),
    "dovecot": ("dovecot.log",),
    "haproxy": ("haproxy.log",),
    "webmail": ("webmail.log", "webmail-error.log"),
    "dns": ("nsd.log", "unbound.log"),
}
CARP_ALLOW = "net.inet.carp.allow"


def check_role(node: str, role: str, service: str) -> None:
    if service not in ROLE_SERVICES.get(role, ()):
        runs = ", ".join(ROLE_SERVICES.get(role, ()))
        raise InputError(f"{node} ({role}) runs no {service}; it runs: {runs}")


def service_argvs(service: str, start: bool) -> list[list[str]]:
    """Commands that stop or start one mailring service on a FreeBSD node.

    HAProxy stops with ``onehardstop`` (SIGTERM): its rc script's plain stop
    is a soft stop (SIGUSR1) that waits for sessions to end (up to the 5 min
    client timeout), which is not a service failure.
    """
    if service == "carp":
        return [["sysctl", f"{CARP_ALLOW}={1 if start else 0}"]]
    if service not in RC_SCRIPTS:
        raise InputError(f"unknown service {service!r}; use one of: "
                         f"{', '.join([*RC_SCRIPTS, 'carp'])}")
    scripts = RC_SCRIPTS[service] if start else tuple(reversed(RC_SCRIPTS[service]))
    if start:
        return [["service", s, "onestart"] for s in scripts]
    return [["service", s, "onehardstop" if s == "haproxy" else "onestop"] for s in scripts]


def status_argv(script: str) -> list[str]:
    return ["service", script, "onestatus"]


# Hang (stop) or resume (cont) each rc.d script's process tree. rc.subr's status line names
# the main pids ("postfix is running as pid 812."); a parent is stopped before its children
# are listed, so it cannot fork one that escapes, and continued after them. pgrep -P with no
# pattern lists a parent's children. A script that is not running is left alone.
FREEZE_SH = r"""stop() {
  kill -STOP "$1" 2>/dev/null || return 0
  for c in $(pgrep -P "$1"); do stop "$c"; done
}
cont() {
  for c in $(pgrep -P "$1"); do cont "$c"; done
  kill -CONT "$1" 2>/dev/null; true
}
op=$1; shift
for s; do
  pids=$(service "$s" onestatus 2>/dev/null | sed -n 's/.* is running as pid \([0-9][0-9 ]*\).*/\1/p')
  [ -n "$pids" ] || { echo "$s is not running: nothing to $op"; continue; }
  for p in $pids; do "$op" "$p"; done
done"""


def daemon_scripts(role: str, daemon: str | None) -> tuple[str, ...]:
    """The rc.d scripts behind one mailring daemon, or behind every daemon of a node of ``role``
    (CARP, the kernel's, has none)."""
    daemons = ROLE_SERVICES.get(role, ()) if daemon is None else (daemon,)
    return tuple(s for d in daemons if d != "carp" for s in RC_SCRIPTS[d])


def freeze_argv(scripts: tuple[str, ...], stop: bool) -> list[str]:
    """SIGSTOP (or SIGCONT) every process of each rc.d script's tree, in one shell."""
    return ["sh", "-c", FREEZE_SH, "sh", "stop" if stop else "cont", *scripts]


def crash_argv(provider: str, machine_id: str, libvirt_uri: str = "qemu:///system") -> list[str]:
    """The host command that cuts a VM's power (VirtualBox poweroff, libvirt destroy)."""
    if provider == "virtualbox":
        return ["VBoxManage", "controlvm", machine_id, "poweroff"]
    if provider == "libvirt":
        return ["virsh", "-c", libvirt_uri, "destroy", machine_id]
    raise InputError(f"crash: provider {provider!r} is not supported; use virtualbox or libvirt")


def power_on_argv(provider: str, machine_id: str, libvirt_uri: str = "qemu:///system") -> list[str]:
    """The host command that powers a crashed VM on again over the same disk (VirtualBox
    headless start, libvirt start): no `vagrant up`, whose Ruby start-up, IP and SSH waits and
    network re-configuration cost minutes on TCG guests; the guest's own config brings it up."""
    if provider == "virtualbox":
        return ["VBoxManage", "startvm", machine_id, "--type", "headless"]
    if provider == "libvirt":
        return ["virsh", "-c", libvirt_uri, "start", machine_id]
    raise InputError(f"boot: provider {provider!r} is not supported; use virtualbox or libvirt")


def machine_id_file(dotfile: Path, node: str, provider: str) -> Path:
    """Where Vagrant keeps a machine's provider id (VirtualBox UUID, libvirt domain UUID)."""
    return dotfile / "machines" / node / provider / "id"


def log_paths(service: str, log_dir: str) -> list[str]:
    if service == "carp":
        return [f"{log_dir}/messages"]  # the kernel logs CARP state changes via syslogd
    if service not in LOG_FILES:
        raise InputError(f"no log for service {service!r}; use one of: "
                         f"{', '.join([*LOG_FILES, 'carp'])}")
    return [f"{log_dir}/{name}" for name in LOG_FILES[service]]


def carp_lines(messages: str) -> str:
    """The CARP lines of /var/log/messages (``carp: 1@em1: BACKUP -> MASTER ...``)."""
    return "".join(line + "\n" for line in messages.splitlines() if "carp" in line.lower())


def bundle_digest(folder: Path) -> str:
    """A digest of the rendered bundles, leaving out files re-made with a new salt each render."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.endswith("/dovecot/users"):
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
