"""FreeBSD guests: kernel CARP aliases in rc.conf, ``ifconfig`` carp states, rc.d ``service``.

The commands and parsers themselves live in ``ops`` and ``parse`` (tested on
recorded FreeBSD output); this class is their adapter.
"""

from __future__ import annotations

import shlex

from mailring.drivers.vagrant import ops
from mailring.drivers.vagrant.guests import Guest, Holdings
from mailring.drivers.vagrant.parse import carp_masters, interface_of, parse_ifconfig
from mailring.errors import InputError
from mailring.topology import Topology


class FreeBSD(Guest):
    os = "freebsd"
    flavour = "freebsd"
    auto_config = True
    insert_key = True

    def check_topology(self, topo: Topology) -> None:
        """HAProxy binds every VIP on every mail node. FreeBSD has no ``ip_nonlocal_bind``:
        the bind works because each node carries every VIP as a CARP alias (in BACKUP
        state too), so each mail node must take part in every vhid."""
        for node in topo.mail_nodes:
            missing = [str(v.address) for v in topo.vips if v.skew_of(node.name) is None]
            if missing:
                raise InputError(
                    f"{topo.path}: vips: {node.name} takes part in no vhid of {', '.join(missing)}; "
                    "on FreeBSD every mail node must back up every VIP (HAProxy binds them all), "
                    "so list it under backups")

    def apply_command(self, bundle: str) -> str:
        return f"sh {bundle}/apply.sh {bundle}"

    def holdings_argv(self) -> list[str]:
        return ["ifconfig"]

    def holdings(self, text: str, address: str, vips: dict[int, str]) -> Holdings:
        iface = interface_of(parse_ifconfig(text), address)
        if iface is None:
            return Holdings(None, False, ())
        return Holdings(iface.name, iface.up, tuple(carp_masters(iface, vips)))

    def service_argvs(self, service: str, start: bool) -> list[list[str]]:
        """rc.d commands, each skipped when its script is already in the wanted state
        (``onestart`` of a running daemon fails)."""
        out = []
        for argv in ops.service_argvs(service, start):
            if argv[0] != "service":
                out.append(argv)
                continue
            test = "if" if start else "if !"
            out.append(["sh", "-c", f'{test} {shlex.join(ops.status_argv(argv[1]))} >/dev/null 2>&1; '
                        f'then exit 0; fi; exec {shlex.join(argv)}'])
        return out

    def freeze_argvs(self, role: str, daemon: str | None, stop: bool) -> list[list[str]]:
        """The rc.d scripts' process trees (``ops.freeze_argv``). CARP is the kernel's here:
        a whole hung node keeps advertising and its VIPs stay (``mailring.faults``), and
        there is no CARP process to hang on its own."""
        if daemon == "carp":
            raise InputError("carp runs in the FreeBSD kernel: there is no process to hang; "
                             "`stop NODE carp` takes the node out of CARP")
        return [ops.freeze_argv(ops.daemon_scripts(role, daemon), stop)]

    def ready_argv(self, role: str) -> list[str]:
        scripts = ops.READY_SCRIPTS[role]
        return ["sh", "-c", 'for s; do service "$s" onestatus >/dev/null 2>&1 || echo "$s"; done; true',
                "sh", *scripts]

    def not_ready(self, role: str, text: str, rc: int) -> str:
        stopped = text.split()
        return f"not running: {', '.join(stopped)}" if stopped or rc != 0 else ""

    def listening_argv(self) -> list[str]:
        return ["sockstat", "-4", "-l", "-q", "-P", "tcp"]

    def listening(self, text: str) -> set[str]:
        """From ``sockstat -4lq`` lines (USER COMMAND PID FD PROTO LOCAL FOREIGN)."""
        return {cols[5] for cols in (line.split() for line in text.splitlines())
                if len(cols) >= 6 and cols[4].startswith("tcp")}

    def resync_clock_argv(self) -> list[str]:
        # rc.conf has ntpdate_hosts=<client>: ntpdate steps the clock once, as at boot
        # (the FreeBSD flavour has not booted yet; the Debian one is what runs)
        return ["sh", "-c", "service ntpd stop; service ntpdate start && service ntpd start"]

    def link_argv(self, iface: str, up: bool) -> list[str]:
        return ["ifconfig", iface, "up" if up else "down"]

    def log_paths(self, service: str, log_dir: str) -> list[str]:
        return ops.log_paths(service, log_dir)

    def log_filter(self, service: str, text: str) -> str:
        return ops.carp_lines(text) if service == "carp" else text
