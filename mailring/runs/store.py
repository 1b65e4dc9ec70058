"""Making, writing and reading one run folder (the format is in ``mailring.runs``).

Writes are atomic (a temporary file renamed into place) or whole JSON lines
appended, so a folder read while a run goes on, or after it died, is never
half a line. ``runs/latest`` is replaced atomically too.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

META = "meta.json"
HISTORY = "history.jsonl"
FAULTS = "faults.jsonl"
OWNERSHIP = "ownership.jsonl"
VERDICT = "verdict.json"
JUNIT = "junit.xml"
OUTAGES = "outages.json"
REPORT = "report.html"
LOGS = "logs"


def runs_root(default: Path | None = None) -> Path:
    """Where run folders go: $MAILRING_RUNS, else ``default``, else ./runs."""
    env = os.environ.get("MAILRING_RUNS")
    return Path(env) if env else (default or Path.cwd() / "runs")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def slug(name: str) -> str:
    """A name safe in a folder name: letters, digits, dot, dash, underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


class RunFolder:
    """One run's folder; ``create`` makes a new one, ``RunFolder(path)`` opens an existing one."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, name: str, root: Path | None = None, stamp: str | None = None,
               **meta: Any) -> RunFolder:
        """``<root>/<stamp>-<name>/`` with meta.json, and ``<root>/latest`` pointing at it."""
        root = root or runs_root()
        stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{slug(name)}"
        path, n = root / base, 1
        while True:
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:  # two runs in the same second
                n += 1
                path = root / f"{base}.{n}"
        folder = cls(path)
        folder.write_meta({"name": name, "start": time.time(), **meta})
        folder.point_latest()
        return folder

    def point_latest(self) -> None:
        latest = self.path.parent / "latest"
        tmp = self.path.parent / f".latest-{os.getpid()}"
        try:
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.path.name)
            tmp.replace(latest)
        except OSError:  # a file system without symlinks: the folder itself is enough
            tmp.unlink(missing_ok=True)

    # writing ----------------------------------------------------------------
    def write_json(self, name: str, data: Any) -> Path:
        path = self.path / name
        write_atomic(path, json.dumps(data, indent=1, default=str) + "\n")
        return path

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.write_json(META, meta)

    def update_meta(self, **fields: Any) -> None:
        self.write_meta({**self.meta(), **fields})

    def append(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Append records as JSON lines (one write per call, so lines never interleave)."""
        text = "".join(json.dumps(r, default=str) + "\n" for r in records)
        if text:
            with open(self.path / name, "a") as f:
                f.write(text)

    # reading ----------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        path = self.path / META
        return json.loads(path.read_text()) if path.exists() else {}

    def lines(self, name: str) -> Iterator[dict[str, Any]]:
        path = self.path / name
        if not path.exists():
            return
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.path / name
        return json.loads(path.read_text()) if path.exists() else default

    def __str__(self) -> str:
        return str(self.path)
