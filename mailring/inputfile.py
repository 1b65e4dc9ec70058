"""Reading a person's YAML file (a topology, a scenario) into data, or one line saying why not.

Topology and scenario files are a few KiB of text. Anything else a person
may hand over by mistake (a binary, a log of several MiB, a folder, a file
with a YAML syntax error) is refused here with one line naming the file,
where in it the problem is, and what to do, before any of it is parsed
further, so the caller can exit 2 having started nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: the shipped files are under 5 KiB


class Unreadable(Exception):
    """The file cannot be read as YAML text; ``str()`` is the whole one-line report."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def pinned(path: str | Path) -> Path:
    """The file ``path`` names now. A path through a symlink (``runs/latest/x``) becomes the path
    it leads to (``runs/<stamp>-<name>/x``, relative to the working folder when inside it); any
    other path is kept as given, so messages name it as the person typed it.

    A command that repoints such a link while it works (each scenario run moves
    ``runs/latest`` to its new folder) still reads, copies and records the files it was given.
    """
    given = Path(path)
    real = given.resolve()
    if real == Path(os.path.abspath(given)):
        return given
    try:
        return real.relative_to(Path.cwd().resolve())
    except ValueError:
        return real


def read_yaml(path: Path, what: str) -> Any:
    """The file's YAML data (None for an empty file). ``what`` names the kind of file in fixes,
    e.g. "a topology file". Raises FileNotFoundError (the caller words that) or Unreadable."""
    where = str(path)
    if path.is_dir():
        raise Unreadable(f"{where}: (file): is a folder; name {what} inside it")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise Unreadable(f"{where}: (file): {size / (1 << 20):.1f} MiB is far larger than "
                             f"{what} can be (at most {MAX_BYTES >> 20} MiB); name the right file")
        data = path.read_bytes()
    except PermissionError:
        raise Unreadable(f"{where}: (file): permission denied; make it readable") from None
    if b"\0" in data:
        raise Unreadable(f"{where}: (file): binary data (NUL bytes), not YAML text; name {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise Unreadable(f"{where}: line {line}: not UTF-8 text (byte {exc.start}); name {what} "
                         "or save it as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "(file)"
        problem = _one_line(getattr(exc, "problem", None) or exc)
        raise Unreadable(f"{where}: {line}: not valid YAML ({problem}); fix the syntax") from None
