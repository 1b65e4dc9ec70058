"""The run folder: ``runs/<timestamp>/`` with node logs and outage figures, ``runs/latest``.

One folder per pytest session (shared by xdist workers through the
controller's timestamp), written atomically, so a failed night's run can be
read the next morning after the cluster is gone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mailring.runs.records import save_logs

if TYPE_CHECKING:
    from mailring.cluster import Cluster

RUNS = Path(__file__).resolve().parents[1] / "runs"
RUN_DIR = pytest.StashKey[Path]()  # this session's run folder, in config.stash


def stamp_run() -> str:
    """This session's run stamp: the one inherited (an xdist worker gets its controller's), else now."""
    stamp = os.environ.get("MAILRING_RUN_STAMP") or time.strftime("%Y%m%d-%H%M%S")
    os.environ["MAILRING_RUN_STAMP"] = stamp
    return stamp


def made_run_dir() -> Path | None:
    """This session's run folder if anything made it yet (never creates it)."""
    stamp = os.environ.get("MAILRING_RUN_STAMP")
    folder = RUNS / stamp if stamp else None
    return folder if folder is not None and folder.is_dir() else None


def run_dir(config: pytest.Config) -> Path:
    """This session's run folder, created on first use, with runs/latest pointing at it."""
    cached = config.stash.get(RUN_DIR, None)
    if cached is not None:
        return cached
    stamp = stamp_run()
    folder = RUNS / stamp
    folder.mkdir(parents=True, exist_ok=True)
    latest = RUNS / "latest"
    tmp = RUNS / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(stamp)
        tmp.replace(latest)
    except OSError:
        pass
    config.stash[RUN_DIR] = folder
    return folder


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def collect_logs(config: pytest.Config, cluster: Cluster) -> None:
    """Copy every node's daemon logs into the run folder before the cluster goes away."""
    save_logs(cluster, run_dir(config) / "logs" / cluster.lab)
