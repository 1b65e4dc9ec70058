"""Errors that mailring reports to a person as one line and exit status 2.

Bad input (a broken topology or scenario file, an unknown node, a missing
tool, not being root) is an ``InputError``: the CLI prints its message alone
and exits 2, and nothing has been started or half-created by then.
"""

from __future__ import annotations

EXIT_INPUT = 2


class InputError(Exception):
    """Bad input or a missing precondition; the message is the whole report."""

    exit_code = EXIT_INPUT


class TopologyError(InputError):
    """The topology file is broken: message names the file, the field and the fix."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        super().__init__(f"{path}: {field}: {problem}")
