"""How the cluster suite is spread over pytest-xdist workers (``--dist loadgroup``).

Two things. The run order: longest first (the tests that share a second lab, then those
marked ``long``, then the other destructive ones, then the rest), because xdist hands each
worker its next test as it finishes and the quick tests then even out the workers' ends.
And the tests that must share a worker (``@pytest.mark.xdist_group(name)``: one second lab for all of them).

pytest-xdist's loadgroup marks a group by appending ``@name`` to a test's node id, which
pytest 9.2 no longer lets a plugin change (pytest-dev/pytest-xdist#1386: the tests are
then spread as if unmarked). So each worker writes the groups it collected to a file the
controller named (``MAILRING_XDIST_GROUPS``), and the controller schedules with xdist's
own LoadGroupScheduling, reading each test's group there.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

GROUPS_ENV = "MAILRING_XDIST_GROUPS"


def order(items: list[pytest.Item]) -> None:
    """In an xdist worker, sort the items by ``run_order`` (every worker sorts alike, as xdist
    requires); one process keeps the collection order (tox -e lab, the VM smoke)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        items.sort(key=run_order)


def run_order(item: pytest.Item) -> int:
    """0: in an xdist_group (a shared second lab: the longest units); 1: marked long; 2: the
    other destructive tests (a fault and its detection: a second or two); 3: the rest (reads of
    a cluster at rest, a fraction of a second each)."""
    if group_of(item):
        return 0
    if item.get_closest_marker("long"):
        return 1
    return 2 if item.get_closest_marker("destructive") else 3


def group_of(item: pytest.Item) -> str | None:
    """The item's xdist group, as xdist names it (several marks: their names joined by ``_``)."""
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})
    return "_".join(names) or None


def name_groups_file(config: pytest.Config) -> None:
    """In the controller of an xdist run: the file the workers write their groups to (the
    workers, started later, inherit the variable)."""
    if config.getoption("dist", None) != "loadgroup" or not config.getoption("numprocesses", None):
        return
    fd, path = tempfile.mkstemp(prefix="mailring-xdist-groups-", suffix=".json")
    os.close(fd)
    os.environ[GROUPS_ENV] = path


def share_groups(items: list[pytest.Item]) -> None:
    """In an xdist worker: write {node id: group} where the controller reads it (every worker
    collects the same tests, so each writes the same map; written whole, then renamed)."""
    path = os.environ.get(GROUPS_ENV)
    if not path or os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    groups = {item.nodeid: group for item in items if (group := group_of(item))}
    tmp = Path(f"{path}.{os.getpid()}")
    tmp.write_text(json.dumps(groups))
    tmp.replace(path)


def forget_groups_file() -> None:
    """In the controller, at the end: remove the groups file it named."""
    path = os.environ.pop(GROUPS_ENV, None)
    if path and os.environ.get("PYTEST_XDIST_WORKER") is None:
        Path(path).unlink(missing_ok=True)


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's LoadGroupScheduling, each test's scope its group from the workers' file (else
    what xdist reads from the node id); None unless --dist loadgroup."""
    path = os.environ.get(GROUPS_ENV)
    if config.getoption("dist", None) != "loadgroup" or not path:
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedLabScheduling(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first asked once every worker has collected
                text = Path(path).read_text()
                self.groups = json.loads(text) if text else {}
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return SharedLabScheduling(config, log)
