"""Judging a finished scenario from its record: pure functions, no I/O.

Each expectation becomes ``mailring.runs.verdict.Result`` rows with figures:
``owners`` (the VIP holders the step expects were reached, and when),
``max_outage`` (the longest outage a client saw of each service after the
step, against the step's bound), ``max_load`` (no node held more VIPs than
the step's bound once its owners were reached), ``samples`` (every probe target was
sampled: a probe that saw nothing fails), ``one_holder`` (no sample shows
a VIP held by two nodes, but the two nodes of a hand-over the model foresees
at a step, within its takeover window) and, when asked for,
``no_mail_lost`` (the mail-flow checker's verdict on mail written all through the
run). A new expectation is a field in
``schema.ExpectSpec`` and a function here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from mailring.checks.holders import (
    Handover,
    Sample,
    as_seen,
    double_holders,
    owner_changes,
    takeover_window_s,
)
from mailring.checks.mailflow import Verdict
from mailring.checks.windows import outage_windows
from mailring.client import Op
from mailring.runs.verdict import Result
from mailring.scenario.load import Scenario, Step

MIN_SAMPLES = 10


@dataclass(frozen=True)
class StepRun:
    """When a step ran and what ownership it reached before the next step.

    Two clocks, never compared with each other: ``t``, ``done``, ``next_t`` and
    ``reached`` are on this host's clock, like the ownership samples (taken from
    here); ``probe_t`` and ``probe_next_t`` are the same moments on the probe's
    clock (``Timeline.now()`` on the client node), like the history the outages
    are measured from. On a VM the client's clock is its own; on the lab they are
    one clock, and a StepRun made without probe times uses the host's for both.
    """

    step: Step
    t: float  # when the step's action started
    done: float  # when it returned
    next_t: float  # when the next step started (or the run ended)
    reached: float | None  # first sample matching the expected owners; None: never
    last_seen: str  # what differed at the last sample, when never reached
    probe_t: float | None = None  # ``t`` on the probe's clock
    probe_next_t: float | None = None  # ``next_t`` on the probe's clock

    def probe_window(self) -> tuple[float, float]:
        """From this step to the next, on the probe's clock: outages that begin in it are the step's."""
        return (self.t if self.probe_t is None else self.probe_t,
                self.next_t if self.probe_next_t is None else self.probe_next_t)


def owners_result(sr: StepRun, expected: dict[str, str | None]) -> Result:
    s = sr.step
    if sr.reached is not None:
        ms = round((sr.reached - sr.t) * 1000)
        return Result("owners", True, f"owners as expected {ms} ms after the step", s.index, s.text,
                      figures={"reached_ms": ms}, duration_s=sr.reached - sr.t)
    whose = "the step's" if s.owners else "the model's"
    return Result("owners", False, f"step {s.index} ({s.text}): VIP owners never matched {whose} "
                  f"within {sr.next_t - sr.t:.1f} s; last seen: {sr.last_seen}", s.index, s.text,
                  figures={"waited_ms": round((sr.next_t - sr.t) * 1000),
                           "expected": {v: o for v, o in expected.items()}},
                  duration_s=sr.next_t - sr.t)


def outage_results(sr: StepRun, ops: list[Op], scenario: Scenario) -> list[Result]:
    """Per bounded service: the worst outage window that began between this step and the next."""
    s, out = sr.step, []
    since, until = sr.probe_window()
    for service, bound in s.max_outage.items():
        worst: tuple[float, str, int] | None = None  # (seconds or inf, host, attempts)
        windows = 0
        for probe in (p for p in scenario.probes if p.service == service):
            for w in outage_windows(ops, probe.name):
                if not since <= w.first_fail < until:
                    continue
                windows += 1
                d = float("inf") if w.duration is None else w.duration
                if worst is None or d > worst[0]:
                    worst = (d, probe.host, w.attempts)
        figures: dict[str, Any] = {"max_outage_ms": round(bound * 1000), "windows": windows}
        if worst is None:
            out.append(Result("max_outage", True, f"{service}: no outage", s.index, s.text, service,
                              figures={**figures, "outage_ms": 0}))
            continue
        d, host, attempts = worst
        ms = None if d == float("inf") else round(d * 1000)
        figures.update(outage_ms=ms if ms is not None else "never recovered", failed_attempts=attempts)
        ok = ms is not None and d <= bound
        seen = f"outage {ms} ms" if ms is not None else "outage never recovered"
        msg = (f"step {s.index} ({s.text}): {service}@{host}: {seen} "
               f"{'<=' if ok else '>'} max_outage {round(bound * 1000)} ms")
        out.append(Result("max_outage", ok, msg, s.index, s.text, service, host, figures))
    return out


def samples_results(ops: list[Op], scenario: Scenario) -> list[Result]:
    counts = {p.name: 0 for p in scenario.probes}
    for op in ops:
        if op.target in counts:
            counts[op.target] += 1
    short = {n: c for n, c in counts.items() if c < MIN_SAMPLES}
    figures = {"targets": len(counts), "operations": sum(counts.values()),
               "fewest": min(counts.values(), default=0)}
    if short:
        listing = ", ".join(f"{n} {c}" for n, c in list(short.items())[:5])
        return [Result("samples", False, f"the probe made fewer than {MIN_SAMPLES} attempts on "
                       f"{len(short)} targets: {listing}", figures=figures)]
    return [Result("samples", True, f"every target sampled at least {MIN_SAMPLES} times", figures=figures)]


def load_results(sr: StepRun, samples: list[Sample], scenario: Scenario) -> list[Result]:
    """``max_load``: once the step's owners are reached and until the next step, no node holds more
    VIPs than the bound (the ring's promise against the domino effect)."""
    s, bound = sr.step, scenario.load_bound(sr.step.index)
    if bound is None:
        return []
    start = sr.reached if sr.reached is not None else sr.t
    worst: tuple[int, str, float] = (0, "nobody", start)
    for sample in samples:
        if start <= sample.t <= sr.next_t:
            counts = Counter(n for held in sample.holders.values() for n in held)
            for node, held in counts.items():
                if held > worst[0]:
                    worst = (held, node, sample.t)
    held, node, t = worst
    figures = {"max_load": bound, "held": held, "node": node,
               "live_mail_nodes": len(scenario.topology.mail_nodes) - len(scenario.out_of_carp(s.index))}
    if held > bound:
        return [Result("max_load", False, f"step {s.index} ({s.text}): {node} held {held} VIPs "
                       f"{t - sr.t:+.1f} s after the step; max_load {bound}", s.index, s.text,
                       figures=figures)]
    return [Result("max_load", True, f"at most {held} VIPs on one node ({node}); max_load {bound}",
                   s.index, s.text, figures=figures)]


def step_handovers(scenario: Scenario, runs: list[StepRun]) -> list[Handover]:
    """The hand-overs the model foresees: at each step, every VIP whose expected owner changes,
    between its old and new holder, from the step's start until a takeover after it returned
    or after the new holder is first seen with it."""
    window = takeover_window_s(scenario.topology.advbase)
    out: list[Handover] = []
    for sr in runs:
        i = sr.step.index
        out += owner_changes(scenario.expected_owners(i - 1), scenario.expected_owners(i), sr.t,
                             max(sr.done - sr.t, 0.0) + window, window)
    return out


def one_holder_results(samples: list[Sample], allowed: list[Handover]) -> list[Result]:
    """No sample shows two holders of one VIP, but for a hand-over the model foresees (strict:
    ``mailring.checks.holders.double_holders``)."""
    seen = as_seen(allowed, samples)
    forgiven = sum(1 for s in samples for vip, held in s.holders.items()
                   if len(held) > 1 and any(h.forgives(s.t, vip, held) for h in seen))
    figures: dict[str, Any] = {"samples": len(samples), "handovers": len(allowed),
                               "forgiven_samples": forgiven}
    if not samples:
        return [Result("one_holder", "unknown", "no ownership samples were taken", figures=figures)]
    doubles = double_holders(samples, samples[0].t, allowed)
    if doubles:
        vip = doubles[0].split()[1]
        return [Result("one_holder", False, "split brain: " + "; ".join(doubles), vip=vip,
                       figures={**figures, "vips_with_two_holders": len(doubles)})]
    return [Result("one_holder", True, "no VIP had two holders but for the hand-overs the model "
                   "foresees", figures=figures)]


def mail_results(scenario: Scenario, mail: Verdict | None) -> list[Result]:
    """``no_mail_lost``: the mail-flow verdict, its counts as figures, the lost or duplicated
    messages named in the message."""
    if not scenario.no_mail_lost:
        return []
    if mail is None:
        return [Result("no_mail_lost", "unknown", "no mail-flow verdict: the writer or the reader failed")]
    if mail.accepted() == 0:
        return [Result("no_mail_lost", False, "the writer got no message accepted: nothing was checked",
                       figures=mail.counts())]
    lines = mail.explain().splitlines()
    return [Result("no_mail_lost", mail.valid, "; ".join(lines[:3]), figures=mail.counts())]


def judge(scenario: Scenario, runs: list[StepRun], ops: list[Op],
          samples: list[Sample], mail: Verdict | None = None) -> list[Result]:
    results: list[Result] = []
    for sr in runs:
        results.append(owners_result(sr, scenario.expected_owners(sr.step.index)))
        results.extend(outage_results(sr, ops, scenario))
        results.extend(load_results(sr, samples, scenario))
    allowed = step_handovers(scenario, runs)
    return (results + samples_results(ops, scenario) + one_holder_results(samples, allowed)
            + mail_results(scenario, mail))
