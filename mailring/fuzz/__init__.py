"""Model-based random faults: random fault sequences on a real cluster, checked step by step.

``moves`` is the fuzzer's alphabet and model (pure): which fault steps of the
registry are legal now, and what the ownership model expects after them.
``check`` runs one step's invariants against the cluster, ``machine`` is the
Hypothesis ``RuleBasedStateMachine`` whose rules come from the fault registry,
``session`` is a run's side on the cluster (each step's fault, its record
and checks, the mail writer, the way back to the model) that the machine
drives, ``write`` turns a shrunk sequence into a scenario file, ``spec`` holds
the records they share (``Options``, ``Failure``), and ``run`` ties them
together for ``mailring fuzz`` and ``tests/cluster/test_fuzz.py``.
"""
