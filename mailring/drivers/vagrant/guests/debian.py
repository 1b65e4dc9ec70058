"""Debian guests: ucarp units, ``ip -j addr``, systemd (the debian-vm flavour).

provision/debian/vm/apply.py makes one unit per process of the lab's
services.yaml, grouped per mailring service in ``mailring-<service>.target``;
ucarp adds a VIP to the cluster NIC as a /32 while it is master and removes
it otherwise, so the VIPs a node holds are the /32s on that NIC.

A hung daemon is ``systemctl kill --signal=SIGSTOP`` of its units
(``mailring-<service>-*.service``): systemctl kill signals every process in a
unit's control group by default, and a unit with none (stopped) is left alone.
ucarp is one of those daemons here, so a whole hung node stops advertising and
its VIPs move, as in the lab (``mailring.faults``: hang's per-OS rule).
"""

from __future__ import annotations

import json

from mailring.drivers.vagrant.guests import Guest, Holdings
from mailring.errors import InputError

# mailring services that run on each role (the targets apply.py makes)
ROLE_SERVICES = {"mail": ("postfix", "dovecot", "haproxy", "webmail", "carp"), "client": ("dns",)}


class Debian(Guest):
    os = "debian"
    flavour = "debian-vm"
    auto_config = False  # the bundle's systemd-networkd file configures the cluster NIC
    insert_key = False  # the box is built here with Vagrant's insecure key; saves ~10 s per VM

    def apply_command(self, bundle: str) -> str:
        return f"python3 {bundle}/apply.py {bundle}"

    def holdings_argv(self) -> list[str]:
        return ["ip", "-j", "-4", "addr", "show"]

    def holdings(self, text: str, address: str, vips: dict[int, str]) -> Holdings:
        try:
            links = json.loads(text or "[]")
        except json.JSONDecodeError as exc:
            raise ValueError(f"`ip -j addr` printed no JSON: {text[:80]!r}") from exc
        wanted = set(vips.values())
        for link in links:
            addrs = link.get("addr_info", [])
            if not any(a.get("local") == address for a in addrs):
                continue
            up = "UP" in link.get("flags", [])
            held = tuple(a["local"] for a in addrs
                         if a.get("local") in wanted and a.get("prefixlen") == 32)
            return Holdings(link.get("ifname"), up, held if up else ())
        return Holdings(None, False, ())

    def service_argvs(self, service: str, start: bool) -> list[list[str]]:
        if service not in {s for names in ROLE_SERVICES.values() for s in names}:
            raise InputError(f"unknown service {service!r}; use one of: "
                             f"{', '.join(s for names in ROLE_SERVICES.values() for s in names)}")
        return [["systemctl", "start" if start else "stop", f"mailring-{service}.target"]]

    def freeze_argvs(self, role: str, daemon: str | None, stop: bool) -> list[list[str]]:
        daemons = ROLE_SERVICES.get(role, ()) if daemon is None else (daemon,)
        return [["systemctl", "kill", f"--signal={'SIGSTOP' if stop else 'SIGCONT'}",
                 *(f"mailring-{d}-*.service" for d in daemons)]]

    def ready_argv(self, role: str) -> list[str]:
        return ["systemctl", "list-units", "--all", "--plain", "--no-legend", "mailring-*.service"]

    def not_ready(self, role: str, text: str, rc: int) -> str:
        """From ``systemctl list-units`` lines (UNIT LOAD ACTIVE SUB DESCRIPTION)."""
        running: dict[str, bool] = {}
        problems = []
        for line in text.splitlines():
            cols = line.split()
            if len(cols) < 4 or not cols[0].startswith("mailring-"):
                continue
            service = cols[0].removeprefix("mailring-").split("-", 1)[0].removesuffix(".service")
            # daemons run; the gate (a oneshot) has run and exited
            ok = cols[2] == "active" and cols[3] in ("running", "exited")
            running[service] = running.get(service, True) and ok
            if not ok:
                problems.append(f"{cols[0]} {cols[2]}/{cols[3]}")
        missing = [s for s in ROLE_SERVICES.get(role, ()) if s not in running]
        if missing:
            problems.insert(0, "no unit for " + ", ".join(missing))
        return "; ".join(problems)

    def listening_argv(self) -> list[str]:
        return ["ss", "-H", "-l", "-t", "-n"]

    def listening(self, text: str) -> set[str]:
        """From ``ss -Hltn`` lines (State Recv-Q Send-Q Local:Port Peer:Port)."""
        out = set()
        for line in text.splitlines():
            cols = line.split()
            if len(cols) >= 4 and cols[0] == "LISTEN":
                addr, _, port = cols[3].rpartition(":")
                out.add(f"{'*' if addr in ('0.0.0.0', '*', '[::]') else addr}:{port}")
        return out

    def resync_clock_argv(self) -> list[str]:
        # a restarted chronyd is unsynchronised until it has measured (iburst) and stepped
        # (makestep 0.1 -1), so waitsync cannot pass on the stale estimate of before the pause
        return ["sh", "-c", "systemctl restart chrony && chronyc waitsync 60 0.05 0 1"]

    def link_argv(self, iface: str, up: bool) -> list[str]:
        return ["ip", "link", "set", iface, "up" if up else "down"]

    def log_paths(self, service: str, log_dir: str) -> list[str]:
        if service == "webmail":
            return [f"{log_dir}/webmail.log", f"{log_dir}/webmail-error.log"]
        return [f"{log_dir}/{service}.log"]
