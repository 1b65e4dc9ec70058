"""Judging a probe timeline watched through a fault: its targets, failed attempts, outage rows.

``mailring.polling.timelines`` waits on a running timeline with these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks import CheckError
from mailring.checks.windows import outage_windows, require_samples
from mailring.client import target
from mailring.runs.outages import Outage
from mailring.speakers import SPEAKERS, Speaker

if TYPE_CHECKING:
    from mailring.client import Op
    from mailring.topology import Topology

HZ = 20
PROBE_TIMEOUT_S = 0.5
WATCHED = ("smtp", "pop3", "imap")


def targets_for(topo: Topology, vips: list[str], services: tuple[str, ...] = WATCHED,
                hz: float | None = None) -> list[dict]:
    """A banner target per (service, VIP), named '<service>@<VIP>' (sampled at ``hz`` if given,
    else at the timeline's rate)."""
    extra = {} if hz is None else {"hz": hz}
    return [target(vip, topo.services[s].port, topo.services[s].protocol, name=f"{s}@{vip}", **extra)
            for vip in vips for s in services]


def failures_of(ops: list[Op], names: list[str], since: float) -> list[str]:
    """One line per target with failed attempts after ``since`` ([] when every attempt succeeded)."""
    out = []
    for n in names:
        require_samples(ops, n, 10)
        bad = [o for o in ops if o.target == n and o.t >= since and not o.ok]
        if bad:
            out.append(f"{n}: {len(bad)} failed attempts from {bad[0].t - since:+.2f} s to "
                       f"{bad[-1].t - since:+.2f} s ({sorted({o.error or '' for o in bad})[:2]})")
    return out


SLACK_S = 0.25  # scheduling on a busy machine


def margin_s(topo: Topology, speaker: Speaker = SPEAKERS["ucarp"], hz: float = HZ,
             timeout_s: float = PROBE_TIMEOUT_S) -> float:
    """What a measured outage may exceed CARP's bound by: what the CARP speaker's timers add
    (keepalived: nothing; ucarp: its one-second tick and libpcap's delay), one probe timeout
    (an attempt sent to the dead owner's MAC just before the takeover hangs until then) and
    one sampling period (of a timeline sampling at ``hz`` with ``timeout_s``), plus scheduling
    slack. The client takes the new owner's gratuitous ARP at once (the lab sets its
    arp_accept and neighbour locktime 0), so no ARP term.
    The default speaker (ucarp) is the most lenient, for waits that assert no bound."""
    return speaker.late_advbase * topo.advbase + timeout_s + 1 / hz + SLACK_S


def failback_allowed_s(bound_s: float, hz: float = HZ, timeout_s: float = PROBE_TIMEOUT_S) -> float:
    """What a failback (the owner preempting its VIP back) may cost: CARP's bound, or, where the
    probe is coarser than that, what one attempt lost in the handover costs it (sent to the old
    holder just before it let go, it hangs until its timeout) with a sampling period on each
    side and scheduling slack. No election runs at a failback, so the bound is a cap. On VMs
    (2 s timeout, 2 Hz) SMTP showed 2.94-3.00 s failbacks, the size of one lost attempt (its
    cause is not verified), under the 3.08 s bound by less than the machine's jitter."""
    return max(bound_s, timeout_s + 2 / hz + SLACK_S)


def short_of(ops: list[Op], names: list[str], minimum: int) -> list[str]:
    """The targets with fewer than ``minimum`` successful attempts in ``ops``."""
    return [n for n in names if sum(1 for o in ops if o.target == n and o.ok) < minimum]


def not_recovered(ops: list[Op], names: list[str], since: float, must_fail: bool = True) -> list[str]:
    """One line per target whose latest attempt after ``since`` failed, or that made none (or,
    if ``must_fail``, that has not failed yet): [] when every target answers again."""
    pending = []
    for n in names:
        mine = [o for o in ops if o.target == n and o.t >= since]
        failed = any(not o.ok for o in mine)
        if not mine or not mine[-1].ok or (must_fail and not failed):
            last = mine[-1] if mine else None
            pending.append(f"{n}: last {last.type + ' ' + (last.error or '') if last else 'none'}")
    return pending


def outages_of(ops: list[Op], names: list[str], since: float, test: str, fault: str,
               bound_s: dict[str, float]) -> list[Outage]:
    """One Outage row per target: its single window not over before `since` (0 ms when it saw
    none). An attempt invoked just before the fault and cut by it opens the window, so a window
    belongs to the fault if it had not recovered by then, wherever its first failure lies."""
    rows = []
    for n in names:
        require_samples(ops, n, 10)
        windows = [w for w in outage_windows(ops, n) if w.recovered is None or w.recovered >= since]
        if len(windows) > 1:
            raise CheckError(f"{n}: {len(windows)} separate outages after {fault}, expected at most one: "
                             + "; ".join(f"{w.first_fail - since:+.2f}s..{w.last_fail - since:+.2f}s "
                                         f"({sorted(set(w.errors))[:2]})" for w in windows))
        service, vip = n.split("@")
        w = windows[0] if windows else None
        ms = 0.0 if w is None else (None if w.duration is None else w.duration * 1000)
        rows.append(Outage(test, fault, vip, service, ms, bound_s[vip] * 1000, w.attempts if w else 0))
    return rows
