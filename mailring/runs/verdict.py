"""The verdict: one result per expectation, merged, written as verdict.json and JUnit XML.

A result is valid (``True``), invalid (``False``) or ``"unknown"`` (the check
itself could not be carried out); the run's verdict is the worst of its
results, false over unknown over true, as Jepsen merges its checkers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from mailring.runs.store import JUNIT, VERDICT, RunFolder, write_atomic

Valid = bool | str  # True | False | "unknown"


@dataclass
class Result:
    """One expectation's outcome, with the figures that decided it."""

    check: str  # owners | max_outage | test | ...
    valid: Valid
    message: str = ""
    step: int | None = None  # 1-based scenario step; None for a whole-run check
    step_text: str = ""  # e.g. "crash mail02"
    service: str | None = None
    vip: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    name: str = ""  # a name of its own (a pytest node id); else made from the fields above

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        where = [x for x in (self.service, self.vip) if x]
        step = f"step {self.step} ({self.step_text}) " if self.step is not None else ""
        return f"{step}{self.check}" + (f" {'@'.join(where)}" if where else "")


def merge(values: list[Valid]) -> Valid:
    """false > unknown > true; no results at all is unknown (nothing was checked)."""
    if not values:
        return "unknown"
    if any(v is False for v in values):
        return False
    if any(v != True for v in values):  # noqa: E712 - "unknown" is truthy
        return "unknown"
    return True


def verdict(results: list[Result], name: str, **extra: Any) -> dict[str, Any]:
    failed = [r for r in results if r.valid is False]
    return {"name": name, "valid": merge([r.valid for r in results]), "checked": len(results),
            "failed": len(failed), "time": time.time(), **extra,
            "results": [asdict(r) for r in results]}


def junit(results: list[Result], suite: str) -> str:
    """JUnit XML: one testsuite, one testcase per result (step as class name)."""
    failures = sum(r.valid is False for r in results)
    errors = sum(r.valid not in (True, False) for r in results)
    ts = ET.Element("testsuite", name=suite, tests=str(len(results)), failures=str(failures),
                    errors=str(errors), time=f"{sum(r.duration_s for r in results):.3f}")
    for r in results:
        classname = f"{suite}.step{r.step:02d}" if r.step is not None else suite
        case = ET.SubElement(ts, "testcase", classname=classname, name=r.title,
                             time=f"{r.duration_s:.3f}")
        if r.valid is False:
            ET.SubElement(case, "failure", message=r.message).text = r.message
        elif r.valid is not True:
            ET.SubElement(case, "error", message=r.message).text = r.message
        if r.figures:
            ET.SubElement(case, "system-out").text = " ".join(f"{k}={v}" for k, v in r.figures.items())
    suites = ET.Element("testsuites")
    suites.append(ts)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_verdict(folder: RunFolder, results: list[Result], name: str, **extra: Any) -> dict[str, Any]:
    """Write verdict.json and junit.xml; return the verdict."""
    v = verdict(results, name, **extra)
    folder.write_json(VERDICT, v)
    write_atomic(folder.path / JUNIT, junit(results, name))
    return v


def results_of(folder: RunFolder) -> list[Result]:
    return [Result(**r) for r in (folder.read_json(VERDICT) or {}).get("results", [])]


def first_failure(verdict: dict[str, Any]) -> str:
    """The first failed (else unknown) result as one line with its figures; '' when all held."""
    bad = [r for r in verdict["results"] if r["valid"] is False] or \
          [r for r in verdict["results"] if r["valid"] is not True]
    if not bad:
        return ""
    r = bad[0]
    figures = ", ".join(f"{k} {v}" for k, v in (r.get("figures") or {}).items() if k != "expected")
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{r['message']} [{figures}]{more}"
