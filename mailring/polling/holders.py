"""Read the VIP holders in a thread, over and over, through faults: the one sampler of
tests, scenario runs and the fuzzer, whose samples ``mailring.checks.holders`` judges."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mailring.checks import CheckError
from mailring.checks.carplog import near
from mailring.checks.holders import Handover, Sample, as_seen, double_holders, held_as, unforgiven
from mailring.errors import InputError

if TYPE_CHECKING:
    from mailring.cluster import Cluster, Status


class HolderWatch:
    """Reads the VIP holders in a thread until stopped; ``samples`` grows meanwhile.

    Use as a context manager around the faults (or ``start()``/``stop()``);
    ``check()`` then raises CheckError naming every double holder, or when fewer
    than ``minimum`` samples were read. ``record`` gets every sample's status and
    time (the run folder's ownership.jsonl).
    """

    def __init__(self, cluster: Cluster, poll_s: float = 0.05,
                 record: Callable[[Status, float], Any] | None = None) -> None:
        self.cluster, self.poll_s, self.record = cluster, poll_s, record
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.latest: Status | None = None
        self.started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="holder-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            try:
                status = self.cluster.status()
                if self.record is not None:
                    self.record(status, t)
            except Exception as exc:  # noqa: BLE001 - a node mid-crash: reported, not fatal
                self.errors.append(f"+{t - self.started:.2f} s: {exc}")
            else:
                with self._lock:
                    self.samples.append(Sample(t, {v: tuple(h) for v, h in status.holders.items()}))
                    self.latest = status
            self._stop.wait(self.poll_s)

    def start(self) -> HolderWatch:
        self.started = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def __enter__(self) -> HolderWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def since(self, t: float) -> list[Sample]:
        """The samples read from ``t`` on (a copy: safe while the thread appends)."""
        with self._lock:
            return [s for s in self.samples if s.t >= t]

    def reached(self, since: float, expected: Mapping[str, str | None]) -> float | None:
        """The time of the first sample from ``since`` on that shows the expected holders."""
        return next((s.t for s in self.since(since) if held_as(s, expected)), None)

    def check(self, allowed: list[Handover] | tuple[Handover, ...] = (),
              minimum: int | None = None) -> list[str]:
        """Raise unless at least ``minimum`` samples (default: the driver's ``HOLDER_SAMPLES``)
        were read and none had two holders of one
        VIP (but for ``allowed`` handovers); return the forgiven handover doubles, described."""
        minimum = self.cluster.HOLDER_SAMPLES if minimum is None else minimum
        if len(self.samples) < minimum:
            raise CheckError(f"only {len(self.samples)} holder samples read (wanted {minimum}); "
                             f"errors: {self.errors[-3:]}")
        doubles = double_holders(self.samples, self.started, allowed)
        if doubles:
            raise CheckError("split brain: " + "; ".join(doubles) + self.carp_logs(allowed))
        return double_holders(self.samples, self.started)

    def carp_logs(self, allowed: list[Handover] | tuple[Handover, ...] = (),
                  since: float | None = None) -> str:
        """The CARP log lines of every node in an unforgiven double (of the samples from
        ``since`` on), near its first and last sample (``checks.carplog``): why the speakers
        did it, in the failure itself."""
        samples = self.since(since) if since is not None else list(self.samples)
        hits = unforgiven(samples, as_seen(allowed, samples))
        spans: dict[str, tuple[float, float]] = {}
        for vip, vip_hits in hits.items():
            t0, t1 = vip_hits[0].t, vip_hits[-1].t
            for node in {n for s in vip_hits for n in s.holders[vip]}:
                a, b = spans.get(node, (t0, t1))
                spans[node] = (min(a, t0), max(b, t1))
        out = []
        for node, (t0, t1) in sorted(spans.items()):
            for service in ("carp", "carp-backup"):  # the lab's backup speakers log apart
                try:
                    text = self.cluster.log_text(node, service)
                except InputError:  # the driver has no such log (the VMs: one CARP log)
                    continue
                except Exception as exc:  # noqa: BLE001 - a report, not a verdict
                    out.append(f"{node} {service} log unreadable: {exc}")
                    continue
                lines = near(text, t0, t1)
                if lines:
                    when = time.strftime("%H:%M:%S", time.localtime(t0))
                    out.append(f"{node} {service} log near {when}:\n    " + "\n    ".join(lines))
        return "".join("\n  " + block for block in out)
