"""A failing fault sequence written as a scenario file that replays it (``mailring scenario FILE``).

Every invariant the fuzzer checks is an expectation of the scenario format:
the model's owners (each step ``after: converged``, so the runner waits the
convergence deadline), ``max_outage`` per probed service that the model says
every VIP serves after the step (the convergence deadline plus HAProxy's
check bound: the fuzzer's own bounds), ``max_load: fair`` (the load promise),
``one_holder`` (always judged) and, when the fuzzer wrote mail,
``no_mail_lost``. The seed, the failing check and the observed vs expected
figures are comments at the top.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mailring.checks.convergence import deadline_s
from mailring.fuzz.check import serve_deadline_s
from mailring.fuzz.moves import FaultState

if TYPE_CHECKING:
    from mailring.fuzz.spec import Failure, Options
    from mailring.topology import Topology

PROBED = ("smtp", "pop3", "imap")  # probed in the replay, with any service a failure names
PROBE_HZ = 10


def n_steps(n: int) -> str:
    return f"{n} step{'' if n == 1 else 's'}"


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=200).strip()


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def scenario_text(topo: Topology, failure: Failure, options: Options, flavour: str) -> str:
    """The scenario file's text for a failing sequence."""
    named = [s for s in topo.services if f"{s}@" in failure.message]
    probed = [s for s in topo.services if s in PROBED or s in named]
    state = FaultState(topo, flavour)
    steps = []
    for move in failure.moves:
        state.apply(move)
        served = state.served()
        bound = deadline_s(topo, state.failed()) + serve_deadline_s(topo)
        ms = math.ceil(bound * 10) * 100
        everywhere = [s for s in probed if all(s in services for services in served.values())]
        step: dict[str, Any] = {**move.step(), "after": "converged"}
        if everywhere:
            step["expect"] = {"max_outage": {s: f"{ms}ms" for s in everywhere}}
        steps.append(step)
    expect: dict[str, Any] = {"max_load": "fair"}
    if options.mail:
        expect["no_mail_lost"] = True
    figures = {k: v for k, v in failure.figures.items() if k in ("observed", "expected", "unserved")}
    other = {k: v for k, v in failure.figures.items() if k not in figures}
    head = [f"# Found by mailring fuzz --seed {options.seed} --steps {options.steps} "
            f"(topology {topo.path}), shrunk to {n_steps(len(failure.moves))}.",
            f"# Failed: {failure.check} after step {len(failure.moves)}: {failure.message}",
            "# Figures at the failing step:"]
    head += _comment(yaml.safe_dump(other, sort_keys=True, width=100).strip())
    if figures:
        head.append("# Observed vs expected:")
        head += _comment(yaml.safe_dump(figures, sort_keys=True, width=100).strip())
    body = [f"name: fuzz-seed{options.seed}",
            "description: >",
            f"  A fault sequence mailring fuzz found breaking '{failure.check}' (seed {options.seed}), "
            f"shrunk to {n_steps(len(failure.moves))}: {', '.join(m.text for m in failure.moves)}.",
            f"probes: {_flow({'services': probed, 'hz': PROBE_HZ})}",
            f"expect: {_flow(expect)}",
            "steps:"]
    body += [f"  - {_flow(s)}" for s in steps]
    return "\n".join(head + body) + "\n"


def write_scenario(folder: Path, topo: Topology, failure: Failure, options: Options, flavour: str) -> Path:
    path = folder / f"fuzz-seed{options.seed}.yaml"
    path.write_text(scenario_text(topo, failure, options, flavour))
    return path
