"""Render per-node config bundles for a flavour (debian for the lab, freebsd for VMs).

``render(topology, flavour, out)`` writes ``out/<node>/...`` for every node,
each a tree that mirrors the node's root filesystem, plus the cluster's TLS
material under ``out/tls/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mailring.errors import InputError
from mailring.render.context import node_context
from mailring.render.engine import environment, load_manifest, render_file
from mailring.render.tls import ensure_tls
from mailring.topology import Topology


def render(topo: Topology, flavour: str, out: str | Path, carp_speaker: str | None = None,
           on_node: Callable[[str, Path], None] | None = None) -> dict[str, Path]:
    """Render every node's bundle under ``out``; return node name -> bundle root.
    ``carp_speaker`` overrides the flavour's (the lab's keepalived or ucarp); ``on_node`` is
    called with each node's name and bundle as soon as that bundle is complete."""
    out = Path(out)
    manifest = load_manifest(flavour)
    dovecot = manifest.dovecot.get(topo.dovecot_version)
    if dovecot is None:
        raise InputError(
            f"{topo.path}: dovecot_version: {topo.dovecot_version!r} has no template in the "
            f"{flavour} flavour (it has {', '.join(sorted(manifest.dovecot))}); set "
            f"dovecot_version to one of those or use another flavour")
    env = environment()
    tls = ensure_tls(topo, out / "tls")
    roots: dict[str, Path] = {}
    for node in topo.nodes.values():
        root = out / node.name
        ctx = node_context(topo, node, manifest.paths, flavour)
        ctx["tls"] = tls
        ctx["dovecot_template"] = dovecot
        ctx["carp_speaker"] = carp_speaker or manifest.carp_speaker
        for spec in manifest.files:
            if node.role in spec.roles:
                render_file(env, spec, ctx, root)
        roots[node.name] = root
        if on_node is not None:
            on_node(node.name, root)
    return roots


__all__ = ["render"]
