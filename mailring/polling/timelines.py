"""Wait on a running probe timeline (until it samples every target, or until they answer
again), or on an advert watch (until it has heard the owners)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailring.checks import CheckError, NotYet
from mailring.checks.timelines import not_recovered, short_of
from mailring.polling.wait import eventually

if TYPE_CHECKING:
    from mailring.adverts import Adverts
    from mailring.client import Timeline


def wait_sampling(tl: Timeline, names: list[str], minimum: int = 3, deadline_s: float = 15) -> None:
    """Block until every target has `minimum` successful attempts (the probe is running)."""

    def check() -> None:
        short = short_of(tl.so_far(), names, minimum)
        if short:
            raise NotYet(f"targets without {minimum} ok samples yet: {short}")

    eventually(check, deadline_s, "probe timeline sampling every target")


def wait_recovered(tl: Timeline, names: list[str], since: float, deadline_s: float,
                   must_fail: bool = True) -> None:
    """Block until every target answers again after `since` (having failed, if must_fail)."""

    def check() -> None:
        pending = not_recovered(tl.so_far(), names, since, must_fail)
        if pending:
            raise NotYet("; ".join(pending))

    eventually(check, deadline_s, "every watched service answering again")


def wait_settled(tl: Timeline, names: list[str], deadline_s: float) -> None:
    """After a heal and converge(): block until every target answers on an attempt invoked
    after now (the probe's clock). An attempt in flight when the VIPs moved back ends, as a
    failure, only after converge() returned; judged on the attempts before it, the timeline
    stopped with that window still open and the failback read as never recovered (1 crash
    in 5 on the lab). A target's attempts run one at a time, so once its latest attempt
    after now answered, the one in flight started after the handover."""
    wait_recovered(tl, names, tl.now(), deadline_s, must_fail=False)


def wait_heard(watch: Adverts, want: dict[int, set[str]], deadline_s: float) -> None:
    """Block until the advert watch listens and has heard every vhid of ``want`` from one of
    its addresses (a crash judged by its adverts needs the owner's last one before it)."""

    def check() -> None:
        if not watch.listening():
            raise NotYet(f"the advert watch on {watch.node} is not listening yet")
        heard = watch.so_far()
        missing = [f"vhid {v} from {'/'.join(sorted(srcs))}" for v, srcs in sorted(want.items())
                   if not any(a.vhid == v and a.src in srcs for a in heard)]
        if missing:
            seen = sorted({(a.vhid, a.src) for a in heard})[:12]
            raise NotYet(f"no advert yet of {', '.join(missing)}; heard {seen or 'none'}")

    try:
        eventually(check, deadline_s, f"the client {watch.node} hearing CARP adverts")
    except CheckError as e:
        try:
            watch.stop()
        except Exception as stopped:  # noqa: BLE001 - its failure is what explains the wait
            raise CheckError(f"{e}; the watch: {stopped}") from e
        raise
