"""Outage scenarios from files: a schema, a loader that checks a file whole, and a runner.

A scenario file (``fixtures/scenarios/*.yaml``) names a list of fault steps
with times and expectations; ``load`` turns it into a checked ``Scenario`` or
one ``InputError`` line (file, step, field), and ``run`` carries it out on a
cluster and writes a run folder (``mailring.runs``). docs/scenarios.md
describes the format.
"""

from __future__ import annotations

from mailring.scenario.load import Scenario, Step, load, validate

__all__ = ["Scenario", "Step", "load", "validate"]
