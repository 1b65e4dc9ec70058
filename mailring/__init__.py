"""mailring: integration test suite and lab for a highly available CARP + HAProxy mail cluster."""

__version__ = "0.1.0"
