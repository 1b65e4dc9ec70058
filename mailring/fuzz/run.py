"""A fuzz run: Hypothesis drives fault sequences on a running cluster; a failure is shrunk and
written as a scenario file.

``fuzz(cluster, folder, options)`` samples VIP holders all through the run
(``checks.holders.HolderWatch``, into ownership.jsonl), lets Hypothesis
generate ``options.examples`` sequences of up to ``options.steps`` steps from
``options.seed``, checks every step (``mailring.fuzz.check``) and, with the
mail writer on, every sequence's mail once healed. On a failure Hypothesis
shrinks the sequence (every candidate is run on the cluster, within the
budget); the shortest failing sequence seen is written as a scenario file
(``mailring.fuzz.write``) beside verdict.json (one row per step, with its
verdict and figures), faults.jsonl and report.html. Every fault is healed and
the cluster brought back to the model at the end of each sequence and of the
run, also on Ctrl-C. The cluster side of each step is ``session.Fuzz``; the
shared records (``Options``, ``Failure``) are in ``spec``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.errors import HypothesisException
from hypothesis.stateful import run_state_machine_as_test

from mailring.fuzz.machine import InvariantBroken, machine_class
from mailring.fuzz.session import Fuzz
from mailring.fuzz.spec import Failure, Options
from mailring.fuzz.write import n_steps, write_scenario
from mailring.runs.records import collect_logs
from mailring.runs.report import write_report
from mailring.runs.verdict import Result, write_verdict

if TYPE_CHECKING:
    from mailring.cluster import Cluster
    from mailring.runs import RunFolder
    from mailring.scenario.progress import Progress

def hypothesis_settings(options: Options) -> settings:
    return settings(max_examples=options.examples, stateful_step_count=options.steps, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck), derandomize=False,
                    phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False,
                    verbosity=Verbosity.quiet, print_blob=False)


def fuzz(cluster: Cluster, folder: RunFolder, options: Options, progress: Progress | None = None,
         replay: str = "mailring scenario") -> dict[str, Any]:
    """Run the fuzzer; return the verdict (also in the folder), with ``scenario`` set to the written
    file when an invariant failed. Every fault is healed in ``finally``."""
    run = Fuzz(cluster, folder, options, progress)
    folder.update_meta(seed=options.seed, steps=options.steps, budget_s=options.budget_s,
                       examples=options.examples, topology=cluster.topology.path, driver=cluster.NAME,
                       lab=cluster.lab, kinds=list(run.kinds),
                       description=f"mailring fuzz: up to {options.examples} random fault sequences of up "
                                   f"to {options.steps} steps from seed {options.seed}, every step checked "
                                   "against the ownership model")
    error: str | None = None
    stopped: BaseException | None = None
    run.restore("before the first step")
    run.watch.start()
    try:
        cls = seed(options.seed)(machine_class(run))
        try:
            run_state_machine_as_test(cls, settings=hypothesis_settings(options))
        except InvariantBroken:
            pass  # recorded in run.failures; the shortest one is written below
        except HypothesisException as exc:  # a flaky replay, everything rejected, ...
            error = _describe(exc)
    except BaseException as exc:
        stopped = exc
        raise
    finally:
        try:
            if run.writer is not None:
                run.writer.stop()
            errors = run.heal("end of run")
            if errors:
                run.progress.note("could not heal: " + "; ".join(errors))
            run.restore("end of run")
        finally:
            run.watch.stop()
            folder.update_meta(end=time.time())
            collect_logs(folder, cluster)
            if stopped is not None:
                _write(run, folder, None, f"the run stopped: {type(stopped).__name__}: {stopped}", replay)
    return _write(run, folder, run.shortest(), error, replay)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _describe(exc: BaseException) -> str:
    """The exception's first line and, for a group (Hypothesis's FlakyFailure), what it holds:
    the error the first run raised, which the replay did not."""
    inner = [_first_line(e) for e in getattr(exc, "exceptions", ())]
    return _first_line(exc) + (f" [{'; '.join(inner)}]" if inner else "")


def _write(run: Fuzz, folder: RunFolder, failure: Failure | None, error: str | None,
           replay: str) -> dict[str, Any]:
    results = [Result("step", v.ok, v.message or "every invariant held", v.index,
                      f"#{v.sequence} {v.move.text}", figures={"check": v.check or "all", **v.figures},
                      duration_s=v.duration_s) for v in run.verdicts]
    extra: dict[str, Any] = {"seed": run.options.seed, "sequences": run.sequences, "steps": run.steps_taken,
                             "restarts": run.restarts}
    if failure is not None:
        path = write_scenario(folder.path, run.topology, failure, run.options, run.flavour)
        command = f"{replay} {path}"
        extra.update(scenario=str(path), replay=command)
        results.append(Result("fuzz", False, f"shrunk to {n_steps(len(failure.moves))}: "
                              + ", ".join(m.text for m in failure.moves) + f"; {failure.check}: "
                              f"{failure.message}; replay: {command}",
                              figures={"steps": len(failure.moves), "check": failure.check}))
    elif error is not None or not run.verdicts:
        results.append(Result("fuzz", "unknown", error or "no step was taken within the budget"))
    else:
        results.append(Result("fuzz", True, f"{run.sequences} sequences, {run.steps_taken} steps, "
                              f"mail judged after {run.mail_checked}: every invariant held"))
    verdict = write_verdict(folder, results, folder.meta().get("name", "fuzz"), **extra)
    write_report(folder)
    return verdict

