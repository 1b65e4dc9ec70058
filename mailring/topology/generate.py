"""Generate a ring topology of any size, for benchmarks and load-model experiments.

Same shape as fixtures/topology.yaml: N mail nodes with two VIPs each, the
first backed by the left neighbour and the second by the right one (small
skew), then the next ring neighbours outwards with larger skews.
"""

from __future__ import annotations

import copy
from ipaddress import IPv4Network
from pathlib import Path

import yaml

from mailring.topology.load import DEFAULT_TOPOLOGY

SKEWS = (20, 100, 140, 180)
# mail nodes at .11 up, VIPs at .101 up (two per node): 60 keeps both inside the /24's hosts
MAX_NODES = 60


def ring(n: int, base: Path = DEFAULT_TOPOLOGY) -> dict:
    """A topology dict with ``n`` mail nodes, services/DNS/users taken from ``base``."""
    if not 2 <= n <= MAX_NODES:
        raise ValueError(f"a generated ring has 2..{MAX_NODES} mail nodes")
    data = copy.deepcopy(yaml.safe_load(base.read_text()))
    net = IPv4Network(data["network"])
    host = lambda i: str(net.network_address + i)  # noqa: E731
    names = [f"mail{i + 1:02d}" for i in range(n)]
    client = next(k for k, v in data["nodes"].items() if v["role"] == "client")
    data["nodes"] = {name: {"role": "mail", "address": host(11 + i)} for i, name in enumerate(names)}
    data["nodes"][client] = {"role": "client", "address": host(100)}
    vips = []
    for i, name in enumerate(names):
        for k, step in enumerate((-1, 1)):
            order = []
            for d in range(1, n):  # neighbours outwards: -1, +1, -2, +2 ... (mirrored for k=1)
                off = (d + 1) // 2 * (step if d % 2 else -step)
                cand = names[(i + off) % n]
                if cand != name and cand not in order:
                    order.append(cand)
            backups = dict(zip(order[: len(SKEWS)], SKEWS, strict=False))
            vips.append({"address": host(101 + 2 * i + k), "vhid": 2 * i + k + 1, "owner": name,
                         "backups": backups})
    data["vips"] = vips
    data["dns"]["server"] = client
    # every node checks every server of every backend, so checks per second grow with
    # n^2 / interval: scale every interval (at rest, confirming a change, DOWN) to keep the
    # 5-node ring's cluster-wide rate (at bring-up the servers of nodes still booting fail
    # their first check and are then checked at the fast interval: unscaled, 250 ms, a 50-ring
    # took 29 s to come up instead of 19)
    for key, default in (("check_interval_ms", 1000), ("fast_interval_ms", None),
                         ("down_interval_ms", None), ("backup_interval_ms", None)):
        interval = data.setdefault("haproxy", {}).get(key, default)
        if interval is not None:
            data["haproxy"][key] = min(60000, max(interval, interval * n * n // 25))
    return data


def write_ring(n: int, path: Path, base: Path = DEFAULT_TOPOLOGY) -> Path:
    path.write_text(yaml.safe_dump(ring(n, base), sort_keys=False))
    return path
