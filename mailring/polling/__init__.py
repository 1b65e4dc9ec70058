"""Polling: read a running cluster (status, HAProxy's runtime API, logs, the client's
probes) until a check's judgement holds, with a deadline.

Every function here does I/O or waits; the judgement it waits on is a pure
function in ``mailring.checks``. ``wait`` holds the two ways of waiting
(``eventually``, ``steadily``); the other modules are named for what they read.
"""
