"""Read a topology file, check it, and build the model.

``validate(path)`` returns every problem as one line naming the file, the
field and what to do; ``load(path)`` raises ``TopologyError`` with the first.
Shapes are checked by pydantic (``schema``), cross-field rules here.

A file may start from another one: ``extends: topology.yaml`` (a path relative
to the file) loads that file first and merges this one over it, mappings key
by key and anything else replaced, so a variant (PROXY off, say) states only
what differs and never repeats an address.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from pydantic import ValidationError

from mailring.errors import TopologyError
from mailring.inputfile import Unreadable, read_yaml
from mailring.topology.model import (
    Dns,
    HaproxyTuning,
    Node,
    Service,
    Topology,
    User,
    VagrantSettings,
    Vip,
)
from mailring.topology.schema import TopologyFile

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "fixtures" / "topology.yaml"


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "dict[constrained-str,list[IPv4Address]]") or "constrained" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base``: mappings key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def _raw(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict | None, list[str]]:
    """The file's mapping with its ``extends:`` chain merged in, or the one-line problem."""
    where = str(path)
    try:
        raw = read_yaml(path, "a topology file")
    except FileNotFoundError:
        if chain:
            return None, [f"{chain[-1]}: extends: {where} not found; name an existing topology file"]
        return None, [f"{where}: file not found; pass an existing topology with --topology"]
    except Unreadable as exc:
        return None, [str(exc)]
    if raw is None:
        return None, [f"{where}: (file): the file is empty; write the cluster's sections (name, network, "
                      "carp, nodes, vips, services, dns, users; see fixtures/topology.yaml)"]
    if not isinstance(raw, dict):
        return None, [f"{where}: (top level): expected a mapping of sections (name, network, nodes, ...)"]
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw, []
    if not isinstance(base_name, str):
        return None, [f"{where}: extends: expected a file name (got {base_name!r}); fix the value"]
    base_path = (path.parent / base_name).resolve()
    if base_path in (*chain, path.resolve()):
        return None, [f"{where}: extends: {base_name} extends this file again; break the loop"]
    base, errs = _raw(base_path, (*chain, path.resolve()))
    return (_merge(base, raw), []) if base is not None else (None, errs)


def _read(path: Path) -> tuple[TopologyFile | None, list[str]]:
    where = str(path)
    raw, errs = _raw(path)
    if raw is None:
        return None, errs
    try:
        return TopologyFile.model_validate(raw), []
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = err["loc"]
            got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
            fix = "add it" if err["type"] == "missing" else "fix the value"
            if err["type"] == "extra_forbidden":
                fix = "remove it or fix its spelling"
            if loc and loc[-1] == "[key]":  # a mapping key that is not allowed (a service name)
                loc, got, fix = loc[:-1], "", "rename it"
            msgs.append(f"{where}: {_loc(loc)}: {err['msg']}{got}; {fix}")
        return None, sorted(set(msgs), key=msgs.index)


def _skipped(ring: list[str], owner: str, backups: set[str]) -> tuple[str, str] | None:
    """(skipped, farther): a mail node no farther from the owner in the ring than one of its
    backups but not a backup itself, so failover skips over it; None when there is no gap.

    The backups of a VIP are the ring neighbours outwards from its owner (both sides, as
    far as the file lists them); a node left out between them would never take the VIP.
    """
    if owner not in ring:
        return None
    n, at = len(ring), ring.index(owner)

    def dist(node: str) -> int:
        d = abs(ring.index(node) - at)
        return min(d, n - d)

    listed = [b for b in backups if b in ring and b != owner]
    if not listed:
        return None
    farthest = max(listed, key=lambda b: (dist(b), ring.index(b)))
    for node in sorted(ring, key=lambda x: (dist(x), ring.index(x))):
        if node != owner and node not in backups and dist(node) <= dist(farthest):
            return node, farthest
    return None


def _cross_check(where: str, f: TopologyFile) -> list[str]:
    errs: list[str] = []

    def err(field: str, text: str) -> None:
        errs.append(f"{where}: {field}: {text}")

    seen: dict[IPv4Address, str] = {}

    def claim(addr: IPv4Address, field: str) -> None:
        if addr not in f.network or addr in (f.network.network_address, f.network.broadcast_address):
            err(field, f"{addr} is not a host address in network {f.network}; use one inside it")
        elif addr in seen:
            err(field, f"{addr} is already used by {seen[addr]}; give each node and VIP its own address")
        else:
            seen[addr] = field

    for name, node in f.nodes.items():
        claim(node.address, f"nodes.{name}.address")
    mail = {n for n, s in f.nodes.items() if s.role == "mail"}
    if not any(s.role == "client" for s in f.nodes.values()):
        err("nodes", "no node has role client; add the client host probes run on")
    if len(mail) < 2:
        err("nodes", "a CARP ring needs at least two nodes with role mail; add more")

    ring = [n for n, s in f.nodes.items() if s.role == "mail"]
    vhids: dict[int, int] = {}
    for i, vip in enumerate(f.vips):
        at = f"vips[{i}]"
        claim(vip.address, f"{at}.address")
        if vip.vhid in vhids:
            err(f"{at}.vhid", f"vhid {vip.vhid} is already used by vips[{vhids[vip.vhid]}]; "
                "give every VIP its own vhid")
        vhids.setdefault(vip.vhid, i)
        if vip.owner not in f.nodes:
            err(f"{at}.owner", f"{vip.owner!r} is not a node; use one of {', '.join(sorted(mail))}")
        elif vip.owner not in mail:
            err(f"{at}.owner", f"{vip.owner!r} is not a mail node; VIPs belong to mail servers")
        if not vip.backups:
            err(f"{at}.backups", f"VIP {vip.address} has no backup, so the ring leaves it "
                "unreachable when its owner dies; list at least one other mail node")
        skews: dict[int, str] = {}
        for node, skew in vip.backups.items():
            if node not in mail:
                err(f"{at}.backups.{node}", f"{node!r} is not a mail node; use one of "
                    f"{', '.join(sorted(mail))}")
            elif node == vip.owner:
                err(f"{at}.backups.{node}", "the owner cannot back up its own VIP; remove it")
            if skew == 0:
                err(f"{at}.backups.{node}", "advskew 0 ties with the owner; give backups a skew above 0")
            elif skew in skews:
                err(f"{at}.backups.{node}", f"advskew {skew} ties with {skews[skew]}; "
                    "give each backup of a VIP its own skew")
            skews.setdefault(skew, node)
        gap = _skipped(ring, vip.owner, set(vip.backups))
        if gap:
            err(f"{at}.backups", f"skips {gap[0]}, which is no farther from the owner {vip.owner} in the "
                f"ring (the order of nodes) than backup {gap[1]}; add {gap[0]} as a backup or drop {gap[1]}")

    # aliases last, so a clash names the alias, not the node or VIP it collides with
    for name, node in f.nodes.items():
        for i, alias in enumerate(node.aliases):
            claim(alias, f"nodes.{name}.aliases[{i}]")

    cluster = {n.address: f"nodes.{name}" for name, n in f.nodes.items() if n.role == "mail"}
    cluster.update({v.address: f"vips[{i}]" for i, v in enumerate(f.vips)})
    for i, net in enumerate(f.customer_networks):
        inside = sorted((str(a), what) for a, what in cluster.items() if a in net)
        if inside:
            err(f"customer_networks[{i}]", f"{net} holds the cluster's own {inside[0][0]} "
                f"({inside[0][1]}); list only the customers' addresses, e.g. a client's /32")

    ports: dict[int, str] = {}
    for name, svc in f.services.items():
        at = f"services.{name}"
        for port, what in ((svc.port, "port"), (svc.proxy_port, "proxy_port")):
            if port is None:
                continue
            if port in ports:
                err(f"{at}.{what}", f"port {port} is already used by {ports[port]}; pick a free port")
            ports.setdefault(port, f"services.{name}.{what}")
        if svc.tls:
            back = f.services.get(svc.backend) if svc.backend else None
            if back is None or back.daemon is None:
                err(f"{at}.backend", "a TLS service needs backend: <a plain service with a daemon>")
            elif back.protocol != svc.protocol:
                err(f"{at}.backend", f"backend {svc.backend} speaks {back.protocol}, not {svc.protocol}")
        elif svc.daemon is None:
            err(f"{at}.daemon", "a plain service needs daemon: postfix, dovecot or webmail")
        elif f.proxy_protocol and svc.proxy_port is None:
            err(f"{at}.proxy_port", "proxy_protocol is on, so give the daemon a proxy_port")

    if f.dns.server not in f.nodes:
        err("dns.server", f"{f.dns.server!r} is not a node; use the client node")
    if f.dns.port == f.dns.authoritative_port:
        err("dns.authoritative_port", "must differ from dns.port (resolver and server share a host)")
    vip_addrs = {v.address for v in f.vips}
    labels: list[str] = []
    for i, item in enumerate(f.dns.names):
        pairs = item.items() if isinstance(item, dict) else [(item, None)]
        for label, addrs in pairs:
            labels.append(label)
            if addrs is not None and not addrs:
                err(f"dns.names[{i}].{label}", "this DNS name has no VIP; list at least one VIP")
            for a in addrs or ():
                if a not in vip_addrs:
                    err(f"dns.names[{i}].{label}", f"{a} is not a VIP; list addresses from vips")
    if not f.vips:
        err("vips", "no VIP, so no DNS name has an address; add the ring's VIPs")
    for label in {x for x in labels if labels.count(x) > 1}:
        err("dns.names", f"{label} is listed twice; list each name once")

    users: set[str] = set()
    for i, user in enumerate(f.users):
        if user.address in users:
            err(f"users[{i}].address", f"{user.address} is listed twice; list each user once")
        users.add(user.address)
        if user.address.split("@", 1)[1] != f.dns.zone:
            err(f"users[{i}].address", f"domain is not the mail domain {f.dns.zone}; use user@{f.dns.zone}")
    if not f.users:
        err("users", "no test user; add at least one {address, password}")
    return errs


def validate(path: str | Path) -> list[str]:
    """Every problem in the topology file, one line each; [] when it is good."""
    path = Path(path)
    parsed, errs = _read(path)
    if parsed is None:
        return errs
    return _cross_check(str(path), parsed)


def _build(path: Path, f: TopologyFile) -> Topology:
    all_vips = tuple(
        Vip(
            address=v.address,
            vhid=v.vhid,
            owner=v.owner,
            backups=tuple(sorted(v.backups.items(), key=lambda kv: kv[1])),
        )
        for v in f.vips
    )
    names = []
    for item in f.dns.names:
        names.extend(item.keys() if isinstance(item, dict) else [item])
    return Topology(
        path=str(path),
        name=f.name,
        network=f.network,
        proxy_protocol=f.proxy_protocol,
        advbase=f.carp.advbase,
        carp_password=f.carp.password,
        preempt=f.carp.preempt,
        nodes={n: Node(n, s.role, s.address, tuple(s.aliases)) for n, s in f.nodes.items()},
        vips=all_vips,
        services={
            n: Service(n, s.port, s.protocol, s.daemon, s.proxy_port, s.tls, s.backend)
            for n, s in f.services.items()
        },
        haproxy=HaproxyTuning(f.haproxy.check_interval_ms, f.haproxy.fall, f.haproxy.rise,
                              f.haproxy.check_timeout_ms, f.haproxy.fast_interval_ms,
                              f.haproxy.down_interval_ms, f.haproxy.backup_interval_ms),
        dns=Dns(
            zone=f.dns.zone,
            ttl=f.dns.ttl,
            server=f.dns.server,
            port=f.dns.port,
            authoritative_port=f.dns.authoritative_port,
            names=tuple(names),
            records={
                label: tuple(addrs) if addrs is not None else tuple(v.address for v in all_vips)
                for item in f.dns.names
                for label, addrs in (item.items() if isinstance(item, dict) else [(item, None)])
            },
        ),
        users=tuple(User(u.address, u.password) for u in f.users),
        vagrant=VagrantSettings(f.vagrant.memory, f.vagrant.cpus, dict(f.vagrant.boxes),
                                f.vagrant.os),
        dovecot_version=f.dovecot_version,
        customer_networks=tuple(f.customer_networks),
    )


def load(path: str | Path | None = None) -> Topology:
    """Load and check a topology file; raise TopologyError naming the first problem."""
    path = Path(path) if path is not None else DEFAULT_TOPOLOGY
    parsed, errs = _read(path)
    if parsed is not None:
        errs = _cross_check(str(path), parsed)
    if errs:
        first = errs[0]
        # "file: field: problem" -> keep the three parts for callers that want them
        _, field, problem = (first.split(": ", 2) + ["", ""])[:3]
        raise TopologyError(str(path), field, problem)
    assert parsed is not None
    return _build(path, parsed)
