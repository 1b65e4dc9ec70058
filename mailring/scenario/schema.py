"""The scenario file's shape, checked by pydantic; rules that need the topology are in ``load``.

::

    name: domino-ring                 # letters, digits, dashes
    description: ...
    topology: ../topology.yaml        # optional: a file, or {extends: FILE, <overrides>}
    probes: {services: [smtp, imap], targets: vips, hz: 20}   # optional; default: all, every VIP
    expect: {max_outage: {smtp: 6s}, max_load: fair, no_mail_lost: true}  # optional: defaults for
                                      # every step;
                                      # no_mail_lost: the whole run (mailring.checks.mailflow)
    steps:
      - {do: crash, node: mail01, after: converged, expect: {max_outage: {smtp: 6s}}}
      - {do: boot, node: mail01, at: 20s}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


def parse_duration(value: Any) -> float:
    """'4s' -> 4.0, '1500ms' -> 1.5, '2m' -> 120.0 (seconds); a bare number has no unit: refused."""
    if isinstance(value, str) and (m := DURATION.match(value)):
        return float(m.group(1)) * UNITS[m.group(2)]
    negative = value.strip().startswith("-") if isinstance(value, str) else (
        isinstance(value, int | float) and value < 0)
    if negative:
        raise ValueError(f"a time or duration cannot be negative (got {value!r}); times count from the start")
    raise ValueError(f"expected a duration like 4s or 1500ms, got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbesSpec(Strict):
    services: list[str] | None = None  # topology service names; default: every one
    targets: Literal["vips"] | list[str] = "vips"  # every VIP, or VIP addresses / DNS names
    hz: Annotated[float, Field(gt=0, le=50)] = 20.0
    timeout: Duration = 0.5


class ExpectSpec(Strict):
    """Checked after each step. Add an expectation here and a judge in ``mailring.scenario.judge``."""

    owners: Literal["model"] | dict[str, str | None] = "model"  # VIP -> node (null: nobody)
    max_outage: Duration | dict[str, Duration] | None = None  # per service, or one for all
    # the load promise against the domino effect: no node holds more VIPs than this once the
    # step's owners are reached; "fair" = ceil(VIPs / mail nodes in CARP after the step)
    max_load: Literal["fair"] | Annotated[int, Field(ge=1)] | None = None
    # the whole run (scenario level only): a writer submits numbered mail all through it, and
    # every accepted message is delivered exactly once (mailring.checks.mailflow)
    no_mail_lost: bool = False


class StepSpec(Strict):
    do: str
    node: str
    daemon: str | None = None
    service: str | None = None
    at: Duration | None = None  # seconds from the scenario's start
    after: Literal["converged"] | None = None  # once the previous step's owners are reached
    expect: ExpectSpec | None = None

    @model_validator(mode="after")
    def one_time(self) -> StepSpec:
        if (self.at is None) == (self.after is None):
            raise ValueError("give exactly one of at (e.g. at: 2s) or after: converged")
        return self


class ScenarioSpec(Strict):
    name: Name
    description: str = ""
    topology: str | dict[str, Any] | None = None
    probes: ProbesSpec = ProbesSpec()
    expect: ExpectSpec | None = None
    steps: Annotated[list[StepSpec], Field(min_length=1)]
