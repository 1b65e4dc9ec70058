"""What a fuzz run is asked to do (``Options``) and what it found when an invariant broke
(``Failure``): plain records shared by the run (``run``, ``session``) and the scenario writer
(``write``), so neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailring.fuzz.moves import Move


@dataclass(frozen=True)
class Options:
    steps: int = 20  # most steps in one sequence
    seed: int = 0
    budget_s: float = 900.0  # the whole run, shrinking included
    examples: int = 1  # sequences Hypothesis generates (before shrinking)
    mail: bool = True  # a mail writer through every sequence, judged once healed
    kinds: tuple[str, ...] | None = None  # fault kinds to use (default: every one the driver supports)


@dataclass
class Failure:
    sequence: int
    moves: list[Move]
    check: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)
