"""report.html: one self-contained page drawn from a run folder with matplotlib.

Per service, a timeline per probed address (VIP or DNS name) of ok and failed
samples, the faults shaded and every outage window labelled in ms; an
ownership chart of which node held each VIP when; the verdict and the fault
timeline as tables. Figures are inline SVG, so the page needs nothing else.
``mailring report RUN_DIR`` draws it again from the folder alone.
"""

from __future__ import annotations

import html
import io
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mailring.checks.windows import outage_windows
from mailring.client import Op
from mailring.runs.records import fault_intervals
from mailring.runs.store import FAULTS, HISTORY, OWNERSHIP, REPORT, VERDICT, RunFolder, write_atomic

OK, FAIL, FAULT, NOBODY, SPLIT = "#3a9a4a", "#d62728", "#f5b041", "#dddddd", "#8e0000"
ROW_IN = 0.32  # inches per timeline row
# around a timeline's axes: the addresses on the left, an outage's label past the end of the
# run on the right, the title above, the time axis below
MARGIN_IN = {"left": 1.2, "right": 0.9, "top": 0.4, "bottom": 0.55}


_WARM: threading.Thread | None = None


def warm_up() -> None:
    """Import matplotlib in the background (half a second) while a session's tests run, so
    that the page is drawn sooner at the end; drawing waits for it (one thread draws)."""
    global _WARM
    if _WARM is None:
        _WARM = threading.Thread(target=_import_quietly, name="mailring-report-warm-up", daemon=True)
        _WARM.start()


def _import_quietly() -> None:
    try:
        _pyplot()
    except Exception:  # only a head start: drawing imports it again and says why it fails
        pass


def _pyplot():
    if _WARM is not None and _WARM is not threading.current_thread():
        _WARM.join()
    os.environ.setdefault("MPLCONFIGDIR", str(Path.home() / ".cache" / "matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "mailring"  # the same folder draws the same page
    import matplotlib.pyplot as plt

    return plt


def _fixed_margins(fig, height_in: float) -> None:
    """Room for the labels, in inches, around the axes: the page lays the figure out without
    ``bbox_inches="tight"``, which draws every text twice (1.3 of a suite report's 3 s)."""
    width_in = fig.get_figwidth()
    fig.subplots_adjust(left=MARGIN_IN["left"] / width_in, right=1 - MARGIN_IN["right"] / width_in,
                        top=1 - MARGIN_IN["top"] / height_in, bottom=MARGIN_IN["bottom"] / height_in)


def _svg(fig, tight: bool = True) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight" if tight else None, metadata={"Date": None})
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def spans(samples: list[tuple[float, bool]], end: float) -> dict[bool, list[tuple[float, float]]]:
    """Consecutive samples of one outcome merged into (start, width) spans, per outcome."""
    out: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    if not samples:
        return out
    start, state = samples[0]
    for (t, ok), nxt in zip(samples, [s[0] for s in samples[1:]] + [end], strict=True):
        if ok != state:
            out[state].append((start, t - start))
            start, state = t, ok
        if nxt == end:
            out[state].append((start, max(end - start, 0.0)))
    return out


def lane_count(faults: list[dict[str, Any]]) -> int:
    """How many fault lanes the faults take (not how many faults: one after another share one)."""
    return max(fault_lanes(faults), default=-1) + 1


def fault_lanes(faults: list[dict[str, Any]]) -> list[int]:
    """A lane per fault so that overlapping faults sit on separate lines."""
    ends: list[float] = []
    lanes = []
    for iv in faults:
        lane = next((i for i, e in enumerate(ends) if e <= iv["start"]), len(ends))
        if lane == len(ends):
            ends.append(iv["end"])
        ends[lane] = iv["end"]
        lanes.append(lane)
    return lanes


def _faults_on(ax, faults: list[dict[str, Any]], t0: float) -> None:
    """Shade each fault across the chart and draw it as a labelled bar in the lanes on top
    (rows 0 .. ``lane_count(faults)`` - 1 of the axes)."""
    lanes = fault_lanes(faults)
    for iv, lane in zip(faults, lanes, strict=True):
        start, width = iv["start"] - t0, iv["end"] - iv["start"]
        ax.axvspan(start, start + width, color=FAULT, alpha=0.18, lw=0, zorder=0)
        ax.broken_barh([(start, width)], (lane - 0.3, 0.6), color=FAULT, lw=0, zorder=2)
        label = iv["fault"] + ("" if iv.get("healed", True) else " (not healed)")
        ax.text(start + 0.1, lane, label, fontsize=7, va="center", ha="left", zorder=3)


def service_figure(service: str, ops: list[Op], faults: list[dict[str, Any]], t0: float,
                   t1: float) -> str:
    """Rows of ok/failed samples per host of one service, faults shaded, outages labelled."""
    plt = _pyplot()
    hosts = sorted({o.target for o in ops}, key=lambda n: _host_key(n.partition("@")[2]))
    n_lanes = lane_count(faults)
    height = 0.8 + ROW_IN * (len(hosts) + n_lanes)
    fig, ax = plt.subplots(figsize=(12, height))
    _fixed_margins(fig, height)
    _faults_on(ax, faults, t0)
    for i, target in enumerate(hosts):
        row = n_lanes + i
        mine = sorted((o for o in ops if o.target == target), key=lambda o: o.t)
        parts = spans([(o.t - t0, o.ok) for o in mine], t1 - t0)
        y = (row - 0.25, 0.5)
        ax.broken_barh(parts[True], y, color=OK, lw=0, zorder=2)
        ax.broken_barh(parts[False], y, color=FAIL, lw=0, zorder=2)
        for w in outage_windows(mine, target):
            stop = (w.recovered if w.recovered is not None else t1) - t0
            text = f"{w.duration * 1000:.0f} ms" if w.duration is not None else "never recovered"
            ax.text(stop + 0.15, row, text, fontsize=7.5, ha="left", va="center", color=FAIL,
                    zorder=4, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.set_yticks(range(n_lanes + len(hosts)),
                  ["fault"] * n_lanes + [h.partition("@")[2] for h in hosts], fontsize=8)
    ax.set_ylim(-0.6, n_lanes + len(hosts) - 0.4)
    ax.set_xlim(0, t1 - t0)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the start of the run")
    ax.set_title(f"{service}: samples per address (green ok, red failed, each outage in ms; "
                 "shaded: faults)", fontsize=10, loc="left")
    return _svg(fig, tight=False)


def ownership_figure(samples: list[dict[str, Any]], faults: list[dict[str, Any]], t0: float,
                     t1: float) -> str:
    """Per VIP, which node held it when (grey: nobody, dark red: several at once)."""
    plt = _pyplot()
    vips = sorted({v for s in samples for v in s["holders"]}, key=_host_key)
    nodes = sorted({n for s in samples for held in s["holders"].values() for n in held})
    cmap = plt.get_cmap("tab10")
    colour = {n: cmap(i % 10) for i, n in enumerate(nodes)}
    n_lanes = lane_count(faults)
    fig, ax = plt.subplots(figsize=(12, 1.1 + ROW_IN * (len(vips) + n_lanes)))
    _faults_on(ax, faults, t0)
    for i, vip in enumerate(vips):
        row = n_lanes + i
        by: dict[str, list[tuple[float, float]]] = defaultdict(list)
        key_then, since = None, samples[0]["t"]
        for s in samples + [{"t": t1, "holders": None}]:
            if s["holders"] is None:
                key = None
            else:
                held = s["holders"].get(vip, [])
                key = held[0] if len(held) == 1 else ("" if not held else "several")
            if key != key_then:
                if key_then is not None:
                    by[key_then].append((since - t0, s["t"] - since))
                key_then, since = key, s["t"]
        for key, parts in by.items():
            ax.broken_barh(parts, (row - 0.3, 0.6), lw=0, zorder=2,
                           color=colour.get(key, NOBODY if key == "" else SPLIT))
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[n]) for n in nodes]
    handles += [plt.Rectangle((0, 0), 1, 1, color=NOBODY), plt.Rectangle((0, 0), 1, 1, color=SPLIT)]
    ax.legend(handles, nodes + ["nobody", "several"], ncol=len(nodes) + 2, fontsize=7,
              loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.25 / max(len(vips), 1)), frameon=False)
    ax.set_yticks(range(n_lanes + len(vips)), ["fault"] * n_lanes + vips, fontsize=8)
    ax.set_xlim(0, t1 - t0)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the start of the run")
    ax.set_title("VIP ownership: the node holding each VIP (shaded: faults)", fontsize=10,
                 loc="left")
    return _svg(fig)


def on_probe_clock(meta: dict[str, Any], events: list[dict[str, Any]], t0: float,
                   t1: float) -> tuple[list[dict[str, Any]], float, float]:
    """Fault events, start and end moved to the probe's clock, to draw over the history.

    A scenario run notes each fault's moment on the probe's clock too (``probe_t``,
    and ``probe_start``/``probe_end`` in meta.json): on a VM the client's clock is
    its own, so the history is never drawn against this host's times. A folder
    without them (a pytest session, the lab's one clock) is drawn as it is."""
    if meta.get("probe_start") is None:
        return events, t0, t1
    p0 = float(meta["probe_start"])
    p1 = float(meta.get("probe_end") or p0 + (t1 - t0))
    return [{**e, "t": e.get("probe_t", e["t"] - t0 + p0)} for e in events], p0, p1


def _host_key(host: str) -> tuple:
    parts = host.split(".")
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1250px}
h1{margin-bottom:.2em} .pass{color:#fff;background:#3a9a4a} .fail{color:#fff;background:#d62728}
.unknown{color:#222;background:#f5b041} .badge{padding:.1em .5em;border-radius:.3em;font-size:.8em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em} td,th{border:1px solid #ccc;
padding:.2em .5em;text-align:left;vertical-align:top} tr.bad td{background:#fde2e2}
.meta{color:#555} figure{margin:0 0 1.5em} svg{max-width:100%;height:auto}"""


def _badge(valid: Any) -> str:
    cls, text = {True: ("pass", "PASS"), False: ("fail", "FAIL")}.get(valid, ("unknown", "UNKNOWN"))
    return f'<span class="badge {cls}">{text}</span>'


def render(folder: RunFolder) -> str:
    """The report page of a run folder, as HTML text."""
    meta = folder.meta()
    lines = list(folder.lines(HISTORY))
    ops = [Op(t=x["t"], end=x["end"], target=x["target"], type=x["outcome"], error=x.get("error"))
           for x in lines]
    events = list(folder.lines(FAULTS))
    samples = sorted(folder.lines(OWNERSHIP), key=lambda s: s["t"])
    verdict = folder.read_json(VERDICT, {}) or {}
    two_clocks = "probe_start" in meta  # the history on the probe's clock; else one clock for all
    times = [e["t"] for e in events] + [s["t"] for s in samples] + \
        ([] if two_clocks else [o.t for o in ops])
    t0 = float(meta.get("start") or (min(times) if times else time.time()))
    t1 = max([float(meta.get("end") or 0)] + times + [t0 + 1] +
             ([] if two_clocks else [o.end for o in ops]))
    faults = fault_intervals(events, t1)

    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>mailring run "
           f"{_esc(meta.get('name'))}</title><style>{CSS}</style></head><body>",
           f"<h1>{_esc(meta.get('name', folder.path.name))} {_badge(verdict.get('valid'))}</h1>",
           f"<p>{_esc(meta.get('description', ''))}</p>",
           f"<p class='meta'>{_esc(folder.path.name)} · driver {_esc(meta.get('driver'))} · lab "
           f"{_esc(meta.get('lab'))} · started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(t0))} · "
           f"{t1 - t0:.1f} s · {len(ops)} probe operations · {len(samples)} ownership samples</p>"]
    results = verdict.get("results", [])
    if results:
        out.append("<h2>Verdict</h2><table><tr><th>step (or test)</th><th>check</th><th>service</th>"
                   "<th>VIP</th><th>result</th><th>figures</th><th>message</th></tr>")
        for r in results:
            step = r.get("name") or ("" if r.get("step") is None else f"{r['step']} {r.get('step_text', '')}")
            figs = ", ".join(f"{k} {v}" for k, v in (r.get("figures") or {}).items())
            out.append(f"<tr class='{'bad' if r['valid'] is False else ''}'><td>{_esc(step)}</td>"
                       f"<td>{_esc(r['check'])}</td><td>{_esc(r.get('service'))}</td>"
                       f"<td>{_esc(r.get('vip'))}</td><td>{_badge(r['valid'])}</td><td>{_esc(figs)}</td>"
                       f"<td>{_esc(r.get('message'))}</td></tr>")
        out.append("</table>")
    if events:
        out.append("<h2>Fault timeline</h2><table><tr><th>t (s)</th><th>what</th><th>fault</th>"
                   "<th>step (or test)</th></tr>")
        for e in sorted(events, key=lambda e: e["t"]):
            out.append(f"<tr><td>{e['t'] - t0:.2f}</td><td>{_esc(e['what'])}</td><td>{_esc(e['fault'])}"
                       f"</td><td>{_esc(e.get('step', e.get('test', '')))}</td></tr>")
        out.append("</table>")
    by_service: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_service[op.target.partition("@")[0]].append(op)
    if by_service:
        out.append("<h2>What the client saw</h2>")
        p_events, p0, p1 = on_probe_clock(meta, events, t0, t1)
        p1 = max([p1] + [o.end for o in ops])
        p_faults = fault_intervals(p_events, p1)
    for service in sorted(by_service):
        out.append(f"<figure>{service_figure(service, by_service[service], p_faults, p0, p1)}</figure>")
    if samples:
        out.append(f"<h2>VIP ownership</h2><figure>{ownership_figure(samples, faults, t0, t1)}</figure>")
    logs = sorted(p.relative_to(folder.path) for p in (folder.path / "logs").rglob("*.log"))
    if logs:
        out.append("<h2>Node logs</h2><ul>" + "".join(
            f"<li><a href='{_esc(p)}'>{_esc(p)}</a></li>" for p in logs) + "</ul>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_report(folder: RunFolder) -> Path:
    path = folder.path / REPORT
    write_atomic(path, render(folder))
    return path
