"""The ``mailring`` command line: one module per group of verbs, wired in ``main``."""
