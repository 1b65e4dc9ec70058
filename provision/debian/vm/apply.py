#!/usr/bin/python3
"""Apply {{ node.name }}'s mailring bundle on a Debian VM; idempotent.

Run by the Vagrantfile as ``python3 <bundle>/apply.py <bundle>`` (root). It
copies the bundle's tree (it mirrors "/") onto the node, makes one systemd unit
per process of /etc/mailring/services.yaml (the same argvs the lab's node init
runs, so ucarp has the lab's advbase, advskew and preempt), grouped in one
target per mailring service (mailring-postfix.target, mailring-carp.target,
...) under mailring.target, and restarts what changed. The ucarp units wait for
mailring-gate.service (/etc/mailring/carp-gate, once per boot): CARP only
once the node's services answer. On a mail node every unit waits for
mailring-filter.service, which loads the packet filter (nftables) that keeps
clients off the PROXY listeners, and for mailring-clock.service: chrony in step
with the client node's clock (etc/chrony/chrony.conf says why). A second
run with the same bundle changes nothing and says so.
"""
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROLE = "{{ node.role }}"
MAIL_UID = {{ mail_uid }}
UNITS = Path("{{ paths.units }}")
LOG = "{{ paths.log }}"
STORE = "{{ paths.mail_store }}"
SERVICES = Path("{{ paths.mailring }}/services.yaml")
GATE = "{{ paths.mailring }}/carp-gate"
GATE_UNIT = "mailring-gate.service"
FILTER = "{{ paths.filter }}"
FILTER_UNIT = "mailring-filter.service"
CLOCK_UNIT = "mailring-clock.service"
CHRONY_CONF = "/etc/chrony/chrony.conf"
SKIP = {"apply.py"}
# services.yaml groups -> mailring service (the lab holds backup ucarps back; here every
# ucarp waits for the gate and backups take over later by their -r dead time)
GROUPS = {"carp-backup": "carp"}
# networkd holds the node's aliases (etc/systemd/network); the lab runs them as a process
NOT_UNITS = {"aliases"}
# daemons that read or write the shared mail store
ON_STORE = {"postfix", "dovecot"}


def sh(*argv, check=True):
    res = subprocess.run(argv, capture_output=True, text=True)
    if check and res.returncode != 0:
        sys.exit("apply: `%s` exited %d: %s" % (shlex.join(argv), res.returncode,
                                               (res.stderr or res.stdout).strip()))
    return res


def put(path, data, mode):
    """Write path if its content or mode differs; True when it did."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".mailring-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(path)
    return True


def copy_tree(bundle):
    changed = []
    for src in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = src.relative_to(bundle)
        if str(rel) in SKIP:
            continue
        if put(Path("/") / rel, src.read_bytes(), src.stat().st_mode & 0o7777):
            changed.append("/" + str(rel))
    return changed


def systemd_quote(argv):
    """ExecStart= from an argv: shell-like quoting, with $ and % escaped for systemd."""
    return " ".join(shlex.quote(a).replace("$", "$$").replace("%", "%%") for a in argv)


def unit_name(service, argv):
    if argv[0] == "ucarp":
        return "mailring-%s-vhid%s.service" % (service, argv[argv.index("-v") + 1])
    return "mailring-%s-%s.service" % (service, os.path.basename(argv[0]))


def units(services):
    """unit file name -> content, for every process and every service target."""
    out = {}
    groups = {}
    for group, procs in services.items():
        if group in NOT_UNITS:
            continue
        service = GROUPS.get(group, group)
        for argv in procs:
            name = unit_name(service, argv)
            groups.setdefault(service, []).append(name)
            after = ["network-online.target", "systemd-networkd.service", "systemd-tmpfiles-setup.service"]
            lines = ["[Unit]", "Description=mailring %s: %s" % (service, argv[0]),
                     "PartOf=mailring-%s.target mailring.target" % service,
                     "StartLimitIntervalSec=0"]
            service_lines = ["[Service]", "ExecStart=" + systemd_quote(argv),
                             "StandardOutput=append:%s/%s.log" % (LOG, service),
                             "StandardError=append:%s/%s.log" % (LOG, service)]
            if service == "carp":
                # only once the daemons answer (the gate, once per boot); ucarp exits when
                # its interface goes down (isolation): start it again when the link is back
                lines.append("Requires=" + GATE_UNIT)
                after.append(GATE_UNIT)
                service_lines += ["Restart=always", "RestartSec=1"]
            if service in ON_STORE and ROLE == "mail":
                lines.append("RequiresMountsFor=" + STORE)
            if ROLE == "mail":  # no daemon listens before the filter is in place and the clock is set
                lines.append("Requires=%s %s" % (FILTER_UNIT, CLOCK_UNIT))
                after += [FILTER_UNIT, CLOCK_UNIT]
            lines.append("After=" + " ".join(after))
            out[name] = "\n".join(lines + [""] + service_lines) + "\n"
    if "carp" in groups:
        out[GATE_UNIT] = "\n".join([
            "[Unit]", "Description=mailring: hold CARP until this node's services answer",
            "PartOf=mailring.target",
            "After=" + " ".join("mailring-%s.target" % s for s in groups if s != "carp"),
            "", "[Service]", "Type=oneshot", "RemainAfterExit=yes", "ExecStart=" + GATE,
            "TimeoutStartSec=330", "StandardOutput=append:%s/carp.log" % LOG,
            "StandardError=append:%s/carp.log" % LOG]) + "\n"
    if ROLE == "mail":
        out[FILTER_UNIT] = "\n".join([
            "[Unit]", "Description=mailring: the packet filter (only mail nodes reach PROXY ports)",
            "PartOf=mailring.target", "DefaultDependencies=no", "Before=network-pre.target",
            "Wants=network-pre.target", "", "[Service]", "Type=oneshot", "RemainAfterExit=yes",
            "ExecStart=/usr/sbin/nft -f " + FILTER]) + "\n"
        # chronyc waitsync: up to 120 tries a second apart, until the correction is under 50 ms
        out[CLOCK_UNIT] = "\n".join([
            "[Unit]", "Description=mailring: this node's clock in step with the client node's",
            "PartOf=mailring.target", "Wants=chrony.service network-online.target",
            "After=chrony.service network-online.target systemd-networkd.service",
            "", "[Service]", "Type=oneshot", "RemainAfterExit=yes",
            "ExecStart=/usr/bin/chronyc waitsync 120 0.05 0 1", "TimeoutStartSec=150",
            "StandardOutput=append:%s/clock.log" % LOG, "StandardError=append:%s/clock.log" % LOG]) + "\n"
    for service, names in groups.items():
        out["mailring-%s.target" % service] = "\n".join([
            "[Unit]", "Description=mailring %s" % service, "Wants=" + " ".join(names),
            "PartOf=mailring.target"]) + "\n"
    out["mailring.target"] = "\n".join([
        "[Unit]", "Description=mailring on this node",
        "Wants=" + " ".join("mailring-%s.target" % s for s in groups),
        "", "[Install]", "WantedBy=multi-user.target"]) + "\n"
    return out


def write_units(services):
    wanted = units(services)
    changed = [n for n, text in wanted.items() if put(UNITS / n, text.encode(), 0o644)]
    for old in UNITS.glob("mailring*"):
        if old.is_file() and old.name not in wanted:
            old.unlink()
            changed.append(old.name)
    return changed


def main():
    bundle = Path(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
    files = copy_tree(bundle)
    Path(STORE).mkdir(parents=True, exist_ok=True)
    if ROLE == "client":
        os.chown(STORE, MAIL_UID, MAIL_UID)
    services = yaml.safe_load(SERVICES.read_text()) or {}
    unit_changes = write_units(services)
    changed = files + unit_changes
    if not changed:
        sh("systemctl", "start", "mailring.target")
        print("apply: {{ node.name }}: nothing changed")
        return 0
    print("apply: {{ node.name }}: changed " + ", ".join(changed))
    sh("hostname", Path("/etc/hostname").read_text().strip())
    sh("systemd-tmpfiles", "--create", "/etc/tmpfiles.d/mailring.conf")
    sh("sysctl", "-q", "-p", "/etc/sysctl.d/60-mailring.conf")
    if any(f.startswith("/etc/systemd/network/") for f in files):
        sh("networkctl", "reload")
        sh("networkctl", "reconfigure", "{{ paths.cluster_if }}")
    sh("systemctl", "daemon-reload")
    if CHRONY_CONF in files:
        sh("systemctl", "enable", "chrony.service")
        sh("systemctl", "restart", "chrony.service")
    if ROLE == "client":
        sh("systemctl", "unmask", "nfs-kernel-server.service", "nfs-server.service")
        sh("systemctl", "enable", "--now", "nfs-server.service")
        sh("exportfs", "-ra")
    else:
        sh("systemctl", "enable", "var-mail-vhosts.mount")
        sh("systemctl", "start", "var-mail-vhosts.mount")
    sh("systemctl", "enable", "mailring.target")
    sh("systemctl", "restart", "mailring.target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
