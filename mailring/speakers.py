"""CARP speakers: which program plays CARP on a node, and how late it may take a VIP over.

The model's takeover bound is CARP's (3 x advbase + advskew/256, see
``Topology.failover_bound_s``). A speaker adds what its timers add on top:
kernel CARP (FreeBSD) and keepalived's VRRPv3 keep precise timers and add
nothing; ucarp checks its timers on a one-second tick and reads adverts through
libpcap up to about a second late, so it may come two advbase late, and each of
its deeper backups waits two advbase more (``-r 3, 5, 7, ...``). The lab runs
keepalived unless ``MAILRING_CARP_SPEAKER=ucarp`` picks ucarp (measured side
by side by ``benchmarks/failover.py``).

keepalived speaks VRRPv3, whose master-down time is 3 x advert interval +
(256 - priority) x advert interval / 256. A backup's priority is derived from
its advskew so that this equals CARP's 3 x advbase + advskew/256: priority =
256 - advskew / advbase, rounded, kept within 1..254 (255 is the owner's).
With advbase 1 (every shipped topology) and advskew 2..240 the two are equal;
otherwise VRRPv3 rounds the skew to a whole 1/256 of advbase.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mailring.errors import InputError

ENV = "MAILRING_CARP_SPEAKER"
OWNER_PRIORITY = 255  # VRRP's address owner: master at once when it starts (CARP: preempt)


@dataclass(frozen=True)
class Speaker:
    name: str
    late_advbase: float  # how late past CARP's bound a takeover may come, in advbase
    rank_advbase: float  # extra dead time per backup rank below the first, in advbase

    def deadline_extra_s(self, advbase: int, rank: int) -> float:
        """What this speaker may add to CARP's bound for a VIP taken over by backup ``rank``."""
        return self.late_advbase * advbase + self.rank_advbase * max(rank, 0) * advbase


SPEAKERS = {
    "keepalived": Speaker("keepalived", 0.0, 0.0),
    "ucarp": Speaker("ucarp", 2.0, 2.0),
    # FreeBSD's kernel CARP on VMs: precise timers, but an emulated (TCG) guest runs late;
    # the VM suites keep ucarp's allowance until measured there.
    "kernel": Speaker("kernel", 2.0, 0.0),
}
LAB_DEFAULT = "keepalived"


def lab_speaker(default: str = LAB_DEFAULT) -> Speaker:
    """The lab's speaker: ``default`` (the flavour's) unless MAILRING_CARP_SPEAKER names another."""
    name = os.environ.get(ENV) or default
    if name not in ("keepalived", "ucarp"):
        raise InputError(f"{ENV}={name!r}: the lab's CARP speaker is keepalived or ucarp; "
                         f"set {ENV}=keepalived (the default) or {ENV}=ucarp")
    return SPEAKERS[name]


def vrrp_priority(advskew: int, advbase: int, owner: bool) -> int:
    """The VRRPv3 priority whose master-down time matches CARP's for ``advskew``."""
    if owner:
        return OWNER_PRIORITY
    return max(1, min(254, 256 - round(advskew / advbase)))


def vrrp_master_down_s(priority: int, advbase: int) -> float:
    """VRRPv3 (RFC 9568 6.1): 3 x Master_Adver_Interval + Skew_Time."""
    return 3 * advbase + (256 - priority) * advbase / 256
