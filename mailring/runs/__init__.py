"""The run folder: one home for what a run leaves behind, read the next morning.

Every pytest session and every scenario run writes one folder, as Jepsen's
store does::

    runs/<YYYYmmdd-HHMMSS>-<name>/
        meta.json         name, description, driver, lab, start/end (epoch s)
        history.jsonl     every probe operation, on the probe's clock: t, end, target,
                          service, host, outcome (ok|fail), latency_ms, error
        faults.jsonl      the fault timeline: t, what (invoke|heal), fault, target, step
        ownership.jsonl   VIP ownership samples: t, holders {VIP: [nodes]}
        verdict.json      valid (true|false|"unknown") and one entry per expectation,
                          with its figures
        junit.xml         the same verdict for CI
        outages.json      outage rows measured by pytest tests (pytest sessions)
        logs/<lab>/<node>/<daemon>.log   node logs collected at the end
        report.html       one self-contained page (``mailring report RUN_DIR`` remakes it)
    runs/latest -> the newest folder

``store`` makes folders and writes them atomically, ``verdict`` judges and
writes verdict.json and junit.xml, ``report`` draws report.html from a folder,
``outages`` gathers the outage rows pytest tests measure into outages.json
(the windows themselves are computed by ``mailring.checks.windows``), and
``session`` writes a pytest session's folder.
"""

from __future__ import annotations

from mailring.runs.store import RunFolder, runs_root

__all__ = ["RunFolder", "runs_root"]
