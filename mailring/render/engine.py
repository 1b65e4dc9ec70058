"""Render a node's config bundle from the flavour's manifest and Jinja2 templates.

``provision/<flavour>/manifest.yaml`` lists the node's filesystem paths and,
per file, its template (under ``provision/``), its destination inside the
bundle (a tree that mirrors the node's root filesystem) and the node roles it
is for. Templates render with StrictUndefined, so a missing value fails the
render instead of writing an empty field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from mailring.errors import InputError
from mailring.render.context import haproxy_backend
from mailring.speakers import vrrp_priority

PROVISION = Path(__file__).resolve().parents[2] / "provision"
FLAVOURS = ("debian", "debian-vm", "freebsd")


@dataclass(frozen=True)
class FileSpec:
    template: str
    dest: str
    roles: tuple[str, ...]
    mode: int


@dataclass(frozen=True)
class Manifest:
    flavour: str
    paths: dict[str, str]
    files: tuple[FileSpec, ...]
    private: tuple[str, ...]  # directories each node keeps to itself (lab bind mounts)
    # Dovecot major version -> its dovecot.conf template ({dovecot_template} in files)
    dovecot: dict[str, str]
    # the program playing CARP on the nodes: kernel (FreeBSD), keepalived or ucarp (Debian)
    carp_speaker: str = "kernel"


def _raw_manifest(flavour: str) -> dict[str, Any]:
    """A flavour's manifest data; ``extends: <flavour>`` starts from that one's paths, files
    and private list, then overrides paths (and dovecot templates) and appends files
    (debian-vm extends debian)."""
    raw = yaml.safe_load((PROVISION / flavour / "manifest.yaml").read_text())
    base_name = raw.get("extends")
    if base_name is None:
        return raw
    base = _raw_manifest(base_name)
    return {
        "paths": {**base["paths"], **raw.get("paths", {})},
        "files": [*base["files"], *raw.get("files", [])],
        "private": [*base.get("private", []), *raw.get("private", [])],
        "dovecot": {**base.get("dovecot", {}), **raw.get("dovecot", {})},
        "carp_speaker": raw.get("carp_speaker", base.get("carp_speaker")),
    }


def load_manifest(flavour: str) -> Manifest:
    if flavour not in FLAVOURS:
        raise InputError(f"unknown flavour {flavour!r}; use one of: {', '.join(FLAVOURS)}")
    raw = _raw_manifest(flavour)
    files = tuple(
        FileSpec(f["template"], f["dest"], tuple(f.get("roles", ["mail", "client"])),
                 int(str(f.get("mode", "0644")), 8))
        for f in raw["files"]
    )
    return Manifest(flavour, dict(raw["paths"]), files, tuple(raw.get("private", [])),
                    {str(k): v for k, v in raw["dovecot"].items()},
                    raw.get("carp_speaker") or "kernel")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROVISION)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dotted"] = lambda addr: str(addr).replace(".", "_")
    env.filters["backend"] = haproxy_backend
    env.globals["vrrp_priority"] = vrrp_priority
    return env


def render_file(env: jinja2.Environment, spec: FileSpec, context: dict[str, Any], root: Path) -> Path:
    """Render one file; its template and dest may name string context values in braces."""
    strings = {k: v for k, v in context.items() if isinstance(v, str)}
    dest = root / spec.dest.format(**strings)
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = env.get_template(spec.template.format(**strings)).render(**context)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, spec.mode)
    tmp.replace(dest)
    return dest
