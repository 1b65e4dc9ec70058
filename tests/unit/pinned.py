"""The topology the unit tests read: a pinned copy of fixtures/topology*.yaml under data/.

Unit tests that assert fixed addresses, ports or names load this copy, so
moving the lab's network in fixtures/topology.yaml breaks no unit test; the
shipped files themselves are only checked to be valid.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"
TOPOLOGY = DATA / "topology.yaml"
