"""Carry out a scenario on a running cluster and write its run folder.

``run(scenario, cluster, folder)`` starts the probes (every target in one or
more timeline agents on the client node), samples VIP ownership in a thread
of its own, runs each step at its time (``at``) or once the previous step's
owners are reached (``after: converged``), waits for the last step to settle,
then judges the record (``judge``) and writes history, faults, ownership,
verdict, JUnit, node logs and report.html. Every fault still active is
healed and the cluster brought back to the model in ``finally``, also on
Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailring.checks import CheckError
from mailring.checks.convergence import deadline_s, describe
from mailring.checks.mailflow import Attempt, Verdict
from mailring.checks.timelines import margin_s
from mailring.client import Client, Op, Timeline, target
from mailring.cluster import TransportError
from mailring.errors import InputError
from mailring.mailflow import FlowWriter, check_flow
from mailring.nemesis import Fault, Nemesis
from mailring.polling.convergence import converge
from mailring.polling.holders import HolderWatch
from mailring.runs.records import collect_logs, record_fault, record_history, record_ownership
from mailring.runs.report import write_report
from mailring.runs.store import slug
from mailring.runs.verdict import Result, write_verdict
from mailring.scenario.judge import StepRun, judge
from mailring.scenario.progress import Progress

if TYPE_CHECKING:
    from mailring.cluster import Cluster
    from mailring.runs import RunFolder
    from mailring.scenario.load import Scenario, Step

MAX_TARGETS = 64  # per timeline agent (probe.py's limit)
SAMPLE_PERIOD_S = 0.2
SETTLE_S = 2.0  # samples kept after the last step settled, so the end of an outage is seen
MAIL_RATE, MAX_MAILS = 20, 10000  # expect no_mail_lost: the writer's rate and bound


def lab_for(base: str, scenario: Scenario) -> str:
    """The caller's lab, or ``<lab>-<topology name>`` for a scenario that brings its own topology
    (the article's first design), so the two clusters never share a name."""
    if not scenario.own_topology:
        return base
    stem = Path(scenario.topology.path).stem.removeprefix("topology-").removeprefix("topology")
    suffix = slug(stem or scenario.name).lower().replace("_", "-").replace(".", "-") or "own"
    return f"{base}-{suffix}"[:24].rstrip("-")


def check_same_topology(cluster: Cluster) -> None:
    """InputError (exit 2, nothing started) when a lab of this name was brought up from another
    topology: reusing it would probe and fault nodes and VIPs its file does not describe, and
    bringing it up would first take the other one down."""
    record = cluster.brought_up_from()
    if record is None:
        return
    path, fingerprint = record
    topo = cluster.topology
    same_file = Path(path).resolve() == Path(topo.path).resolve()
    if fingerprint == topo.fingerprint() or (fingerprint is None and same_file):
        return
    raise InputError(f"{topo.path}: --lab {cluster.lab}: that lab runs another topology (brought up "
                     f"from {path}{', since changed' if same_file else ''}); take it down first "
                     f"(mailring down --lab {cluster.lab}) or run beside it under another lab name "
                     "(--lab NAME)")


def is_up(cluster: Cluster) -> bool:
    """Every node of the lab running (possibly with faults a run will heal)."""
    try:
        status = cluster.status()
    except (TransportError, InputError, OSError):
        return False
    return all(n.state != "down" for n in status.nodes.values())


def supported(cluster: Cluster, scenario: Scenario) -> None:
    """InputError (exit 2, nothing started) for a verb the driver cannot do."""
    for step in scenario.steps:
        if not cluster.supports(step.verb.kind):
            raise InputError(f"{scenario.path}: step {step.index}: do: the {cluster.NAME} driver has no "
                             f"{step.verb.name}; remove the step or use another driver")


def make_fault(step: Step) -> Fault:
    """The nemesis fault a (fault) step starts: its kind, node, and daemon or service."""
    what = step.daemon if step.verb.takes == "daemon" else step.service
    return Fault(step.verb.kind, step.node, (what,) if what else ())


def _last_seen(sampler: HolderWatch, expected: dict[str, str | None]) -> str:
    if sampler.latest is None:
        return "no ownership sample"
    diff = {vip: (o, sampler.latest.holders.get(vip, [])) for vip, o in expected.items()
            if sampler.latest.holders.get(vip, []) != ([o] if o else [])}
    return describe(diff) or "as expected"


def _wait_owners(sampler: HolderWatch, since: float, expected: dict[str, str | None],
                 until: float, progress: Progress, label: str) -> float | None:
    """Poll the sampler until the expected owners are seen (-> time) or ``until`` passes (-> None)."""
    while True:
        reached = sampler.reached(since, expected)
        if reached is not None:
            return reached
        if time.time() >= until:
            return None
        progress.status(f"{label}: waiting for the owners; {_last_seen(sampler, expected)[:150]}")
        time.sleep(SAMPLE_PERIOD_S / 2)


def _start_probes(client: Client, scenario: Scenario, seconds: float) -> list[Timeline]:
    topo = scenario.topology
    specs = []
    for p in scenario.probes:
        svc = topo.services[p.service]
        specs.append(target(p.host, svc.port, svc.protocol, name=p.name, tls=svc.tls))
    return [client.timeline(specs[i:i + MAX_TARGETS], hz=scenario.hz, max_seconds=seconds,
                            timeout=scenario.timeout) for i in range(0, len(specs), MAX_TARGETS)]


def _wait_sampling(timelines: list[Timeline], progress: Progress, deadline: float = 20.0) -> None:
    """Every target answered a few times: the probes run and the cluster serves before step 1."""
    from mailring.checks import NotYet
    from mailring.polling.wait import eventually

    def check() -> None:
        short = []
        for tl in timelines:
            ops = tl.so_far()
            short += [t["name"] for t in tl.targets
                      if sum(1 for o in ops if o.target == t["name"] and o.ok) < 3]
        if short:
            progress.status(f"probes: waiting for {len(short)} targets to answer ({short[0]}, ...)")
            raise NotYet(f"targets without 3 ok samples: {', '.join(short[:6])}")

    eventually(check, deadline, "every probe target answering before the first step", poll_s=0.2)


def probe_now(timelines: list[Timeline]) -> float:
    """Now on the probe's clock (the client node's): the latest attempt a timeline reported.

    Step times compared with the history come from here, never from this host's
    clock, which a VM's clock need not match (``Timeline.now``)."""
    return max(tl.now() for tl in timelines)


def _wait_recovered(timelines: list[Timeline], until: float, progress: Progress) -> None:
    """Until every target's latest attempt succeeded (or ``until``): outages end inside the record."""
    while time.time() < until:
        failing = []
        for tl in timelines:
            last: dict[str, Op] = {}
            for o in tl.so_far():
                last[o.target] = o
            failing += [n for n, o in last.items() if not o.ok]
        if not failing:
            return
        progress.status(f"settling: {len(failing)} targets still failing ({failing[0]}, ...)")
        time.sleep(0.2)


def run(scenario: Scenario, cluster: Cluster, folder: RunFolder,
        progress: Progress | None = None) -> dict[str, Any]:
    """Carry out the scenario; return the verdict (also in the folder). Faults healed in finally."""
    progress = progress or Progress()
    scenario = dataclasses.replace(scenario, flavour=cluster.FLAVOUR)
    topo = scenario.topology
    margin = margin_s(topo, cluster.carp_speaker)
    supported(cluster, scenario)
    shutil.copy(scenario.path, folder.path / "scenario.yaml")
    folder.update_meta(description=scenario.description, scenario=scenario.path, topology=topo.path,
                       driver=cluster.NAME, lab=cluster.lab, steps=[s.text for s in scenario.steps],
                       clock="history, and probe_t/probe_start/probe_end, on the probe's clock (the "
                             "client node's); t, start, end and ownership on this host's")
    progress.status("waiting until the cluster matches the model before the first step")
    converge(cluster, failed=set())
    n = len(scenario.steps)
    budget = max((s.at or 0) for s in scenario.steps) + n * 60 + 120  # the probes' own time limit
    client = Client(cluster)
    nemesis = Nemesis(cluster)
    sampler = HolderWatch(cluster, SAMPLE_PERIOD_S,
                          record=lambda status, t: record_ownership(folder, status, t))
    timelines: list[Timeline] = []
    active: dict[str, tuple[Fault, str]] = {}  # target -> (fault, step text)
    runs: list[StepRun] = []
    ops: list[Op] = []
    stopped: BaseException | None = None
    writer: FlowWriter | None = None
    attempts: list[Attempt] | None = None
    mail: Verdict | None = None
    unrestored: Result | None = None
    try:
        timelines = _start_probes(client, scenario, min(budget, 3600))
        if scenario.no_mail_lost:  # numbered mail to every VIP in turn, all through the run
            writer = FlowWriter(client, hosts=[str(v.address) for v in topo.vips], rate=MAIL_RATE,
                                count=MAX_MAILS, max_seconds=min(budget, 3600))
        sampler.start()
        _wait_sampling(timelines, progress)
        t_start, p_start = time.time(), probe_now(timelines)
        folder.update_meta(start=t_start, probe_start=p_start)
        # steps run, not yet judged for owners: (step, t, done, t on the probe's clock)
        pending: list[tuple[Step, float, float, float]] = []

        def close(step: Step, t: float, done: float, pt: float, next_t: float, next_pt: float) -> None:
            expected = scenario.expected_owners(step.index)
            reached = sampler.reached(t, expected)
            seen = "" if reached is not None else _last_seen(sampler, expected)
            runs.append(StepRun(step, t, done, next_t, reached, seen, pt, next_pt))

        for step in scenario.steps:
            label = f"step {step.index}/{n} ({step.text})"
            if pending:
                prev, t_prev, _, _ = pending[-1]
                failed = scenario.out_of_carp(prev.index)
                if step.after:
                    until = time.time() + deadline_s(topo, failed) + margin
                else:
                    until = t_start + step.at
                _wait_owners(sampler, t_prev, scenario.expected_owners(prev.index), until, progress,
                             f"step {prev.index}/{n} ({prev.text})")
                if step.after:  # converged: the owners are in place and clients reach them again
                    _wait_recovered(timelines, time.time() + margin + 10, progress)
            if step.at is not None:
                while (left := t_start + step.at - time.time()) > 0:
                    progress.status(f"{label}: at {step.at:g}s, in {left:.1f}s")
                    time.sleep(min(left, 0.1))
            t, pt = time.time(), probe_now(timelines)
            if pending:
                close(*pending.pop(), next_t=t, next_pt=pt)
            progress.note(f"{label} at {t - t_start:.1f}s")
            _do(nemesis, step, active, folder, t, pt)
            pending.append((step, t, time.time(), pt))
        last, t_last, done, p_last = pending.pop()
        failed = scenario.out_of_carp(last.index)
        until = time.time() + deadline_s(topo, failed) + margin
        _wait_owners(sampler, t_last, scenario.expected_owners(last.index), until, progress,
                     f"step {last.index}/{n} ({last.text})")
        _wait_recovered(timelines, time.time() + margin + 10, progress)
        time.sleep(SETTLE_S)
        t_end, p_end = time.time(), probe_now(timelines)
        close(last, t_last, done, p_last, next_t=t_end, next_pt=p_end)
        for tl in timelines:
            ops.extend(tl.stop())
        if writer is not None:
            attempts = writer.stop()
        folder.update_meta(end=t_end, probe_end=p_end)
    except BaseException as exc:
        stopped = exc
        raise
    finally:
        for tl in timelines:
            try:
                kept = tl.ops is not None
                got = tl.stop()
                if not kept:
                    ops.extend(got)
            except Exception:  # noqa: BLE001 - the run already failed; keep cleaning up
                pass
        if writer is not None and attempts is None:
            try:
                writer.stop()
            except Exception:  # noqa: BLE001 - the run already failed; keep cleaning up
                pass
        t_heal = time.time()
        errors = nemesis.heal_all()
        p_heal = {"probe_t": max(o.end for o in ops)} if ops else {}  # the probes had stopped
        for tgt, (_, text) in active.items():  # healed by the run, not by a step
            record_fault(folder, "heal", text, tgt, t=t_heal, done=time.time(), by="end of run", **p_heal)
        if errors:
            progress.note("could not heal: " + "; ".join(errors))
        try:
            progress.status("restoring: waiting until the cluster matches the model again")
            try:
                converge(cluster, failed=set())
            except CheckError as exc:  # healed, yet not back to the model: a verdict, not a crash
                if stopped is not None:
                    raise
                unrestored = Result("restored", False, f"every fault healed, but the cluster did not "
                                    f"return to the model's owners: {exc}")
                progress.note(unrestored.message)
            if writer is not None and attempts is not None:
                progress.status("mail: waiting for every queue to drain, then reading the mailboxes")
                mail = check_flow(cluster, client, attempts, writer.prefix)
        finally:
            sampler.stop()
            record_history(folder, ops)
            collect_logs(folder, cluster)
            if stopped is not None:  # what was recorded stays readable: an unknown verdict, a report
                why = f"the run stopped before its end: {type(stopped).__name__}: {stopped}"
                try:
                    write_verdict(folder, [Result("run", "unknown", why)], scenario.name,
                                  scenario=scenario.path)
                    write_report(folder)
                except Exception as exc:  # noqa: BLE001 - keep the original error
                    progress.note(f"could not write the verdict or report: {exc}")
    judged = [s for s in sampler.samples if s.t <= t_end]  # not the restoring heal after the end
    results = judge(scenario, runs, ops, judged, mail) + ([unrestored] if unrestored else [])
    verdict = write_verdict(folder, results, scenario.name, scenario=scenario.path)
    write_report(folder)
    return verdict


def _do(nemesis: Nemesis, step: Step, active: dict[str, tuple[Fault, str]], folder: RunFolder,
        t: float, pt: float) -> None:
    """Apply the step's fault, or heal the fault it undoes; record both ends in faults.jsonl
    (``t`` on this host's clock, ``probe_t`` the same moment on the probe's)."""
    if step.verb.undoes:
        fault, text = active.pop(step.target)
        nemesis.heal(fault)
        record_fault(folder, "heal", text, step.target, t=t, probe_t=pt, step=step.index,
                     done=time.time(), by=step.text)
        return
    fault = make_fault(step)
    nemesis.apply(fault)
    active[step.target] = (fault, step.text)
    record_fault(folder, "invoke", step.text, step.target, t=t, probe_t=pt, step=step.index,
                 done=time.time())
