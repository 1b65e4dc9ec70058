"""Progress of long steps: rich on a terminal, plain lines when not a terminal or under CI."""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType

from rich.console import Console


class Progress:
    """``status(text)`` replaces the live line; ``note(text)`` prints a line that stays."""

    def __init__(self, plain: bool | None = None) -> None:
        if plain is None:
            plain = not sys.stderr.isatty() or bool(os.environ.get("CI"))
        self.plain = plain
        self.console = Console(stderr=True, highlight=False)
        self._live = None
        self._last = ""
        self._t0 = time.monotonic()

    def __enter__(self) -> Progress:
        if not self.plain:
            self._live = self.console.status("")
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def status(self, text: str) -> None:
        """A passing state (waiting for convergence: holders ...); plain mode prints changes only."""
        if text == self._last:
            return
        self._last = text
        if self._live is not None:
            self._live.update(text)
        else:
            print(f"[{time.monotonic() - self._t0:6.1f}s] {text}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self._live is not None:
            self.console.print(text)
        else:
            print(f"[{time.monotonic() - self._t0:6.1f}s] {text}", file=sys.stderr, flush=True)
