"""Model-based random faults: random fault sequences on a real cluster, checked step by step.

``moves`` is the fuzzer's alphabet and model (pure): which fault steps of the
registry are legal now, and what the ownership model expects after them.
``check`` runs one step's invariants against the cluster, ``machine`` is the
Hypothesis ``RuleBasedStateMachine`` whose rules come from the fault registry,
``write`` turns a shrunk sequence into a scenario file, and ``run`` ties them
together for ``mailring fuzz`` and ``tests/cluster/test_fuzz.py``.
"""
