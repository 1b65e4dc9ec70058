"""Checks: pure functions that judge what probes and logs recorded.

A check that finds a violation raises ``CheckError`` (an ``AssertionError``,
so pytest reports it as a test failure) with a message that says what was
expected and what was seen.
"""

from __future__ import annotations


class CheckError(AssertionError):
    """A recorded history violates a property the cluster must have."""
