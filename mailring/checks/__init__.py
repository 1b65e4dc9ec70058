"""Checks: pure judgement of what probes, logs and status reads recorded.

Every function here is a function of samples, records or figures: no socket,
no process, no clock, no sleep. Reading a running cluster until a judgement
holds (converge, wait for a server, sweep the VIPs, follow a log) is
``mailring.polling``'s job, which calls these functions on what it read.

Two outcomes besides "holds":

* ``CheckError`` (an ``AssertionError``, so pytest reports a test failure): a
  verdict. The history violates a property; the message says what was
  expected and what was seen.
* ``NotYet``: the data cannot tell yet (a log line not written, a VIP still
  moving). Polling reads again; a check never waits itself.
"""

from __future__ import annotations


class CheckError(AssertionError):
    """A recorded history violates a property the cluster must have."""


class NotYet(Exception):
    """The condition does not hold yet; the message says what was seen."""
