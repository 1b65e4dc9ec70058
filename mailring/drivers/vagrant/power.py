"""A VM's power state straight from its provider, without Vagrant's Ruby start-up.

``vagrant status`` costs seconds per call; ``virsh domstate`` (libvirt) and
``VBoxManage showvminfo`` (VirtualBox) answer in milliseconds, so status()
can poll several times per second. The machine id is the one Vagrant keeps in
``<dotfile>/machines/<node>/<provider>/id``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mailring.errors import InputError

PROVIDERS = ("libvirt", "virtualbox")


def machine(dotfile: Path, node: str) -> tuple[str, str] | None:
    """(provider, machine id) of a node Vagrant created; None when it made none."""
    for provider in PROVIDERS:
        try:
            machine_id = (dotfile / "machines" / node / provider / "id").read_text().strip()
        except FileNotFoundError:
            continue
        if machine_id:
            return provider, machine_id
    return None


def state_argv(provider: str, machine_id: str, libvirt_uri: str) -> list[str]:
    if provider == "libvirt":
        return ["virsh", "-c", libvirt_uri, "domstate", machine_id]
    if provider == "virtualbox":
        return ["VBoxManage", "showvminfo", machine_id, "--machinereadable"]
    raise InputError(f"provider {provider!r} is not supported; use libvirt or virtualbox")


def parse_state(provider: str, text: str) -> str:
    """``running`` when the VM runs; otherwise the provider's word for it (``shut off``, ...)."""
    if provider == "virtualbox":
        for line in text.splitlines():
            if line.startswith("VMState="):
                return line.split("=", 1)[1].strip().strip('"')
        return "unknown"
    words = text.strip().splitlines()
    return words[0].strip() if words else "unknown"


def power_state(dotfile: Path, node: str, libvirt_uri: str) -> str:
    """``running``, another provider state, ``not_created``, or ``unknown`` (provider did not say)."""
    found = machine(dotfile, node)
    if found is None:
        return "not_created"
    provider, machine_id = found
    try:
        res = subprocess.run(state_argv(provider, machine_id, libvirt_uri), capture_output=True,
                             text=True, timeout=15)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "unknown"
    if res.returncode != 0:
        return "not_created" if "ailed to get domain" in res.stderr else "unknown"
    return parse_state(provider, res.stdout)
