"""The /experiments page's data: the event log through the project's one A/B analysis
(:func:`smartreco.experiments.analysis.analyse`), plus the traffic share over time as an SVG plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import SmartRecoError
from smartreco.feedback.records import VARIANT

#: most time buckets the traffic-share plot draws
MAX_BUCKETS = 24
#: colour per arm (colour-blind safe: blue / orange, then more)
PALETTE = ("#1f5fbf", "#c45a00", "#2a8a4a", "#8a2a8a")


@dataclass
class ExperimentView:
    log_dir: str
    summary: dict[str, Any] | None = None
    share: list[dict[str, Any]] = field(default_factory=list)  # [{t, arm: share...}] per time bucket
    svg: str = ""
    problem: str | None = None  # why there is nothing to show yet


def find_experiment(log_dir: Path, explicit: Path | None = None) -> Path | None:
    """experiment.json given, inside the log folder or next to it (as ``smartreco ab report`` looks)."""
    if explicit is not None:
        return explicit
    for cand in (log_dir / "experiment.json", log_dir.parent / "experiment.json"):
        if cand.is_file():
            return cand
    return None


def traffic_share(imp: pd.DataFrame, arms: list[str], buckets: int = MAX_BUCKETS) -> list[dict[str, Any]]:
    """Share of impressions per arm in equal time buckets over the experiment's period (the bandit's
    allocation as it moved). One bucket when every impression has the same timestamp."""
    ts = imp[C.TIMESTAMP]
    n_bins = max(1, min(buckets, ts.nunique()))
    bins = pd.cut(ts.astype("int64"), n_bins, labels=False) if n_bins > 1 else pd.Series(0, index=imp.index)
    counts = pd.crosstab(bins, imp[VARIANT]).reindex(columns=arms, fill_value=0)
    totals = counts.sum(axis=1)
    mid = ts.groupby(bins).median()
    return [
        {"t": mid.loc[b].isoformat(), "n": int(totals.loc[b]),
         **{a: float(counts.loc[b, a] / totals.loc[b]) for a in arms}}
        for b in counts.index
        if totals.loc[b] > 0
    ]


def share_svg(points: list[dict[str, Any]], arms: list[str], width: int = 640, height: int = 240) -> str:
    """A line per arm (share 0..1 against time), server-rendered: no JavaScript, no external assets."""
    left, right, top, bottom = 48, 16, 16, 40
    w, h = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(v: float) -> float:
        return top + h * (1 - v)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="share-title share-desc" class="share-plot">',
        '<title id="share-title">Traffic share per arm over time</title>',
        f'<desc id="share-desc">Share of impressions served by each arm in {n} time bucket(s): '
        + "; ".join(f"{a} last {points[-1][a]:.0%}" for a in arms if points)
        + "</desc>",
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ccc"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.0%}</text>')
    if points:
        for label, i in ((points[0]["t"][:16].replace("T", " "), 0), (points[-1]["t"][:16].replace("T", " "), n - 1)):
            anchor = "start" if i == 0 and n > 1 else ("end" if n > 1 else "middle")
            parts.append(f'<text x="{x(i):.1f}" y="{top + h + 16}" text-anchor="{anchor}" '
                         f'font-size="11">{label}</text>')
    for k, arm in enumerate(arms):
        colour = PALETTE[k % len(PALETTE)]
        pts = " ".join(f"{x(i):.1f},{y(p[arm]):.1f}" for i, p in enumerate(points))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
        for i, p in enumerate(points):
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p[arm]):.1f}" r="3" fill="{colour}"/>')
        lx = left + 8 + 140 * k
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="12" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{height - 8}" font-size="11">{arm}</text>')
    parts.append("</svg>")
    return "".join(parts)


def experiment_view(log_dir: Path, experiment_path: Path | None = None) -> ExperimentView:
    """Analyse the event log now; a log that cannot be analysed yet (no impressions, one arm) is a
    ``problem`` sentence for the page, never an error page."""
    from smartreco.experiments.analysis import analyse
    from smartreco.experiments.design import Experiment
    from smartreco.feedback.dataset import read_dataset

    view = ExperimentView(log_dir=str(log_dir))
    if not log_dir.is_dir():
        view.problem = f"no event log at {log_dir} yet: serve the graph and ask for recommendations first"
        return view
    try:
        path = find_experiment(log_dir, experiment_path)
        experiment = Experiment.load(path) if path is not None else None
        analysis = analyse(read_dataset(log_dir), experiment)
    except SmartRecoError as exc:
        view.problem = str(exc)
        return view
    arms = list(analysis.summary["arms"])
    view.summary = analysis.summary
    view.share = traffic_share(analysis.per_impression, arms)
    view.svg = share_svg(view.share, arms)
    return view
