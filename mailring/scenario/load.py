"""Read a scenario file, check all of it against the topology, and build a ``Scenario``.

``load(path)`` raises ``InputError`` with one line: the file, the step number
and the field, what is wrong and what to do (``mailring scenario`` exits 2
on it before anything is started). ``validate(path)`` returns every problem.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mailring.errors import InputError, TopologyError
from mailring.faults import DAEMONS
from mailring.inputfile import Unreadable, read_yaml
from mailring.scenario.schema import ExpectSpec, ScenarioSpec, StepSpec
from mailring.scenario.verbs import VERBS, Verb, node_out_of_carp, target_of
from mailring.topology import DEFAULT_TOPOLOGY, Topology
from mailring.topology import load as load_topology


class ScenarioError(InputError):
    """A broken scenario file: the message is ``FILE: step N: FIELD: problem; fix``."""


@dataclass(frozen=True)
class Step:
    index: int  # 1-based, as the file counts them in messages
    verb: Verb
    node: str
    daemon: str | None
    service: str | None
    at: float | None  # seconds from the scenario's start
    after: str | None  # "converged"
    max_outage: dict[str, float]  # service -> seconds
    owners: dict[str, str | None] | None  # explicit VIP owners; None: the model's
    max_load: int | str | None = None  # most VIPs on one node: a number, "fair", or None (unchecked)

    @property
    def target(self) -> str:
        return target_of(self.verb, self.node, self.daemon, self.service)

    @property
    def text(self) -> str:
        what = self.daemon if self.verb.takes == "daemon" else self.service
        return f"{self.verb.name} {self.node}" + (f" {what}" if what else "")


@dataclass(frozen=True)
class Probe:
    service: str
    host: str  # a VIP address or a DNS name

    @property
    def name(self) -> str:
        return f"{self.service}@{self.host}"


@dataclass(frozen=True)
class Scenario:
    path: str
    name: str
    description: str
    topology: Topology
    own_topology: bool  # the file chose its topology (else: the caller's)
    steps: tuple[Step, ...]
    probes: tuple[Probe, ...]
    hz: float
    timeout: float
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    flavour: str = "debian"  # the nodes' OS, for per-OS fault rules (the runner sets its driver's)
    no_mail_lost: bool = False  # expect: {no_mail_lost: true}: the run's mail is all delivered

    def out_of_carp(self, upto: int) -> set[str]:
        """Nodes out of CARP once steps 1..upto have run (the model's failed set)."""
        down: dict[str, str] = {}
        for step in self.steps[:upto]:
            if step.verb.undoes:
                down.pop(step.target, None)
            elif node_out_of_carp(step.verb, step.daemon, self.flavour):
                down[step.target] = step.node
        return set(down.values())

    def load_bound(self, upto: int) -> int | None:
        """The step's max_load as a number: "fair" is ceil(VIPs / mail nodes in CARP after it)."""
        bound = self.steps[upto - 1].max_load
        if bound != "fair":
            return bound if isinstance(bound, int) else None
        live = len(self.topology.mail_nodes) - len(self.out_of_carp(upto))
        return math.ceil(len(self.topology.vips) / max(live, 1))

    def expected_owners(self, upto: int) -> dict[str, str | None]:
        owners = self.topology.expected_owners(self.out_of_carp(upto))
        step = self.steps[upto - 1] if upto else None
        if step is not None and step.owners:
            owners.update(step.owners)
        return owners


def _where(loc: tuple) -> str:
    """('steps', 2, 'node') -> 'step 3: node'; ('probes', 'hz') -> 'probes.hz'."""
    parts = [p for p in loc if p not in ("function-after[one_time()]",) and not str(p).startswith(
        ("function-", "literal[", "list[", "dict[", "float", "str", "constrained"))]
    if len(parts) >= 2 and parts[0] == "steps" and isinstance(parts[1], int):
        rest = ".".join(str(p) for p in parts[2:])
        return f"step {parts[1] + 1}" + (f": {rest}" if rest else "")
    return ".".join(str(p) for p in parts) or "(top level)"


def _spec(path: Path) -> tuple[ScenarioSpec | None, list[str], dict]:
    where = str(path)
    try:
        raw = read_yaml(path, "a scenario file")
    except FileNotFoundError:
        return None, [f"{where}: file not found; name an existing scenario file"], {}
    except Unreadable as exc:
        return None, [str(exc)], {}
    if raw is None:
        return None, [f"{where}: the file is empty; write name, description and steps "
                      "(see docs/scenarios.md)"], {}
    if not isinstance(raw, dict):
        return None, [f"{where}: (top level): expected a mapping with name, description, steps"], {}
    try:
        return ScenarioSpec.model_validate(raw), [], raw
    except ValidationError as exc:
        msgs = []
        errors = exc.errors()
        wheres = [_where(e["loc"]) for e in errors]
        # a union (a duration, or one per service) fails on every branch: keep the deepest
        deepest = [e for e, w in zip(errors, wheres, strict=True)
                   if not any(o != w and o.startswith(w + ".") for o in wheres)]
        for err in deepest:
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                fix = "add it"
            elif err["type"] == "extra_forbidden":
                fix = "remove it or fix its spelling"
            else:
                fix = "fix the value"
            got = f" (got {err['input']!r})" if err["type"] not in ("missing", "value_error") else ""
            msgs.append(f"{where}: {_where(err['loc'])}: {msg}{got}; {fix}")
        return None, list(dict.fromkeys(msgs)), raw


def _topology(path: Path, spec: ScenarioSpec, default: Path) -> Topology:
    if spec.topology is None:
        return load_topology(default)
    if isinstance(spec.topology, str):
        file = (path.parent / spec.topology).resolve()
        if not file.exists():
            raise ScenarioError(f"{path}: topology: {spec.topology} not found (relative to the "
                                "scenario file); name an existing topology file")
        return load_topology(file)
    over = dict(spec.topology)
    base = over.get("extends")
    if not isinstance(base, str):
        raise ScenarioError(f"{path}: topology.extends: missing; say which topology file the "
                            "overrides apply to, e.g. extends: ../topology.yaml")
    over["extends"] = str((path.parent / base).resolve())
    with tempfile.TemporaryDirectory(prefix="mailring-scenario-") as tmp:
        file = Path(tmp) / f"{path.stem}-topology.yaml"
        file.write_text(yaml.safe_dump(over))
        try:
            return load_topology(file)
        except TopologyError as exc:
            raise ScenarioError(f"{path}: topology.{exc.field}: {exc.problem}") from None


def _probes(where: str, spec: ScenarioSpec, topo: Topology, errs: list[str]) -> list[Probe]:
    services = spec.probes.services or list(topo.services)
    for s in services:
        if s not in topo.services:
            errs.append(f"{where}: probes.services: unknown service {s!r}; use some of "
                        f"{', '.join(topo.services)}")
    vips = [str(v.address) for v in topo.vips]
    hosts: list[str] = []
    for h in (vips if spec.probes.targets == "vips" else spec.probes.targets):
        if h in vips or h in topo.dns.fqdns:
            hosts.append(h)
        elif h in topo.dns.names:
            hosts.append(f"{h}.{topo.dns.zone}")
        else:
            errs.append(f"{where}: probes.targets: {h!r} is neither a VIP nor a DNS name of the "
                        f"topology; use vips, a VIP address or one of {', '.join(topo.dns.names)}")
    return [Probe(s, h) for h in hosts for s in services if s in topo.services]


def _max_outage(expect: ExpectSpec | None, services: list[str]) -> dict[str, float]:
    if expect is None or expect.max_outage is None:
        return {}
    if isinstance(expect.max_outage, dict):
        return dict(expect.max_outage)
    return {s: expect.max_outage for s in services}


def _steps(where: str, spec: ScenarioSpec, topo: Topology, probed: list[str],
           errs: list[str]) -> list[Step]:
    mail = [n.name for n in topo.mail_nodes]
    vips = [str(v.address) for v in topo.vips]
    active: dict[str, int] = {}  # fault target -> the step that started it
    last_at, steps = 0.0, []

    def err(n: int, fld: str, text: str) -> None:
        errs.append(f"{where}: step {n}: {fld}: {text}")

    for n, s in enumerate(spec.steps, 1):
        verb = VERBS.get(s.do)
        if verb is None:
            err(n, "do", f"unknown verb {s.do!r}; use one of {', '.join(sorted(VERBS))}")
            continue
        if s.node not in mail:
            err(n, "node", f"unknown node {s.node!r}; faults go to mail nodes: {', '.join(mail)}")
            continue
        _check_object(n, s, verb, topo, err)
        if s.at is not None:
            if s.at < last_at:
                err(n, "at", f"{s.at:g}s goes back in time (an earlier step is at {last_at:g}s); "
                             "order steps by time")
            last_at = s.at
        default = spec.expect
        if s.expect is not None and s.expect.no_mail_lost:
            err(n, "expect.no_mail_lost", "an expectation for the whole run; put it in the scenario's "
                                          "expect, beside name and steps")
        expect = s.expect if s.expect is not None else default
        max_out = {**_max_outage(default, probed), **_max_outage(s.expect, probed)}
        for svc in max_out:
            if svc not in probed:
                err(n, f"expect.max_outage.{svc}", f"{svc} is not probed; add it to probes.services "
                                                  f"or use one of {', '.join(probed)}")
        owners = None
        if expect is not None and isinstance(expect.owners, dict):
            owners = {}
            for key, node in expect.owners.items():
                if key in mail:  # "mail01: mail04": mail01's own VIPs are held by mail04
                    owners.update({str(v.address): node for v in topo.vips_owned_by(key)})
                elif key in vips:
                    owners[key] = node
                else:
                    err(n, f"expect.owners.{key}", f"neither a VIP nor a mail node of the topology; "
                                                  f"use a node ({', '.join(mail)}) for its own VIPs")
                if node is not None and node not in mail:
                    err(n, f"expect.owners.{key}", f"unknown node {node!r}; use one of {', '.join(mail)}")
        max_load = s.expect.max_load if s.expect is not None and s.expect.max_load is not None else (
            default.max_load if default is not None else None)
        step = Step(n, verb, s.node, s.daemon, s.service, s.at, s.after, max_out, owners, max_load)
        if verb.undoes:
            started = active.get(step.target)
            if started is None or VERBS[spec.steps[started - 1].do].inverse != verb.name:
                err(n, "do", f"{verb.name} {step.target} undoes no earlier {verb.inverse}; "
                             f"add a {verb.inverse} step before it or remove this one")
            active.pop(step.target, None)
        else:
            clash = active.get(step.target) or active.get(s.node)
            if clash:
                err(n, "do", f"{step.text}: already disrupted by step {clash} "
                             f"({spec.steps[clash - 1].do} {spec.steps[clash - 1].node}); "
                             f"add its {VERBS[spec.steps[clash - 1].do].inverse} step first")
            active[step.target] = n
        steps.append(step)
    return steps


def _check_object(n: int, s: StepSpec, verb: Verb, topo: Topology, err) -> None:
    """The daemon or service a verb acts on: required, allowed, known."""
    given = {"daemon": s.daemon, "service": s.service}
    for fld, value in given.items():
        if value is not None and verb.takes != fld:
            err(n, fld, f"{verb.name} takes no {fld}; remove it")
    if verb.takes is None:
        return
    value = given[verb.takes]
    known = DAEMONS if verb.takes == "daemon" else tuple(topo.services)
    if value is None and verb.needs:
        err(n, verb.takes, f"{verb.name} needs a {verb.takes}; add one of {', '.join(known)}")
    elif value is not None and value not in known:
        err(n, verb.takes, f"unknown {verb.takes} {value!r}; use one of {', '.join(known)}")


def validate(path: str | Path, topology: str | Path | None = None) -> tuple[Scenario | None, list[str]]:
    """The scenario and no problems, or None and every problem as one line."""
    path = Path(path)
    where = str(path)
    spec, errs, raw = _spec(path)
    if spec is None:
        return None, errs
    try:
        topo = _topology(path, spec, Path(topology) if topology else DEFAULT_TOPOLOGY)
    except ScenarioError as exc:
        return None, [str(exc)]
    except TopologyError as exc:
        return None, [f"{where}: topology: {exc}"]
    probes = _probes(where, spec, topo, errs)
    probed = sorted({p.service for p in probes}, key=list(topo.services).index)
    steps = _steps(where, spec, topo, probed, errs)
    if errs:
        return None, errs
    return Scenario(where, spec.name, spec.description.strip(), topo, spec.topology is not None,
                    tuple(steps), tuple(probes), spec.probes.hz, spec.probes.timeout, raw,
                    no_mail_lost=bool(spec.expect and spec.expect.no_mail_lost)), []


def load(path: str | Path, topology: str | Path | None = None) -> Scenario:
    """The checked scenario; ScenarioError (exit 2) with the first problem."""
    scenario, errs = validate(path, topology)
    if scenario is None:
        raise ScenarioError(errs[0])
    return scenario
