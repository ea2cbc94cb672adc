"""A/B report: one self-contained HTML page (base64 PNG plots, no scripts, so the Kubeflow UI renders
it) plus ``summary.json`` for machines and ``summary.md`` for KFP Markdown artifacts."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.experiments.analysis import DAY, Analysis
from smartreco.feedback.records import VARIANT


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(analysis: Analysis) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    daily, alpha = analysis.daily, analysis.summary["alpha"]
    out: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for arm, g in daily.groupby(VARIANT, sort=False):
        ax.plot(g[DAY], g["ctr"], marker="o", ms=3, label=str(arm))
        ax.fill_between(g[DAY], g["ctr_low"], g["ctr_high"], alpha=0.2)
    ax.set_title(f"Cumulative CTR per arm with {1 - alpha:.0%} CI")
    ax.set_ylabel("CTR")
    ax.legend()
    fig.autofmt_xdate()
    out["ctr"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 2.8))
    for arm, g in daily.groupby(VARIANT, sort=False):
        ax.plot(g[DAY], g["share"], marker="o", ms=3, label=str(arm))
    ax.set_ylim(0, 1)
    ax.set_title("Traffic share per day")
    ax.legend()
    fig.autofmt_xdate()
    out["traffic"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 2.8))
    seq = daily.dropna(subset=["seq_p_value"])
    for arm, g in seq.groupby(VARIANT, sort=False):
        ax.plot(g[DAY], g["seq_p_value"], marker="o", ms=3, label=f"{arm} vs control")
    ax.axhline(alpha, color="red", ls="--", lw=1, label=f"alpha = {alpha}")
    ax.set_yscale("log")
    lowest = float(np.nanmin(seq["seq_p_value"])) if len(seq) else 1.0
    ax.set_ylim(max(1e-6, min(alpha, lowest) / 2), 1.05)
    ax.set_title("Always-valid p-value (mSPRT): safe to look every day")
    ax.legend()
    fig.autofmt_xdate()
    out["pvalue"] = _png(fig)
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def _num(v: float | None, fmt: str = ".3g") -> str:
    return "n/a" if v is None else format(v, fmt)


def summary_markdown(summary: dict) -> str:
    lines = [
        "# A/B experiment report",
        "",
        f"**Recommendation:** {summary['recommendation']}",
        "",
        "| arm | impressions | users | CTR (95% CI) | conversion | mean reward |",
        "|---|---|---|---|---|---|",
    ]
    for arm, s in summary["arms"].items():
        lines.append(
            f"| {arm} | {s['impressions']:,} | {s['users']:,} | {_pct(s['ctr'])} "
            f"({_pct(s['ctr_ci'][0])}..{_pct(s['ctr_ci'][1])}) | {_pct(s['conversion_rate'])} | "
            f"{s['mean_reward']:.4f} |"
        )
    lines += [
        "",
        "| comparison | lift (CI) | z-test p | Welch p (reward) | Cohen's h | always-valid p |",
        "|---|---|---|---|---|---|",
    ]
    for c in summary["comparisons"]:
        lo, hi = c["relative_lift_ci"]
        lines.append(
            f"| {c['treatment']} vs {c['control']} | {_pct(c['relative_lift'])} ({_pct(lo)}..{_pct(hi)}) | "
            f"{_num(c['ztest']['p_value'])} | {_num(c['welch_reward']['p_value'])} | "
            f"{_num(c['cohens_h'])} | {_num(c['sequential']['p_value'])} |"
        )
    srm = summary["srm"]
    lines += [
        "",
        f"SRM: {'skipped (' + srm['skipped'] + ')' if 'skipped' in srm else 'p = ' + _num(srm['p_value'])}"
        + (" — MISMATCH" if srm.get("mismatch") else ""),
        f"Sample size: {summary['sample_size']['smallest_arm']:,} of "
        f"{summary['sample_size']['required_per_arm']:,} per arm required.",
        missing_impressions_line(summary),
    ]
    return "\n".join(lines) + "\n"


def missing_impressions_line(summary: dict) -> str:
    """Impressions expected (feedback names their request id) but not in the log."""
    lost = summary.get("missing_impressions") or {"count": 0, "expected": 0}
    if not lost["count"]:
        return f"Missing impressions: none (every one of {lost['expected']:,} request id(s) with feedback has one)."
    shown = ", ".join(lost["request_ids"][:10]) + (" ..." if lost["count"] > 10 else "")
    return (
        f"Missing impressions: {lost['count']:,} of {lost['expected']:,} request id(s) with feedback "
        f"({lost['share']:.1%}; {lost['feedback']:,} feedback record(s) left out of the rates): {shown}"
    )


def render_html(analysis: Analysis) -> str:
    s = analysis.summary
    plots = _plots(analysis)
    md_rows = summary_markdown(s).splitlines()
    tables = [ln for ln in md_rows if ln.startswith("|")]

    def table(rows: list[str]) -> str:
        cells = [
            [html.escape(c.strip()) for c in r.strip("|").split("|")]
            for r in rows
            if not r.startswith("|---")
        ]
        head = "".join(f"<th>{c}</th>" for c in cells[0])
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
        return f"<table><tr>{head}</tr>{body}</table>"

    split = next(i for i, r in enumerate(tables[1:], 1) if r.startswith("| comparison"))
    srm = s["srm"]
    srm_txt = (
        f"skipped ({srm['skipped']})"
        if "skipped" in srm
        else f"chi² = {srm['chi2']:.2f}, p = {srm['p_value']:.3g}"
        + (" — <b>MISMATCH</b>" if srm["mismatch"] else " (ok)")
    )
    imgs = "".join(
        f'<h3>{t}</h3><img alt="{k}" src="data:image/png;base64,{plots[k]}"/>'
        for k, t in (
            ("ctr", "CTR per arm over time"),
            ("traffic", "Traffic share"),
            ("pvalue", "Always-valid p-value path"),
        )
    )
    caveats = "".join(f"<li>{html.escape(c)}</li>" for c in s["caveats"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>A/B report</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
.rec{{background:#eef6ee;padding:1em;border-left:4px solid #3a3}}</style>
</head><body><h1>A/B experiment report</h1>
<p class="rec"><b>Recommendation:</b> {html.escape(s["recommendation"])}</p>
<p>Metric: {html.escape(s["success_metric"])}, alpha = {s["alpha"]}, unit: {html.escape(s["unit"])},
{s["days"]} day(s) {html.escape(s["period"][0][:10])} .. {html.escape(s["period"][1][:10])};
feedback attributed {s["counts"]["feedback_attributed"]:,} / {s["counts"]["feedback"]:,}.
{html.escape(missing_impressions_line(s))}</p>
<h2>Arms</h2>{table(tables[:split])}<h2>Tests (treatment vs control)</h2>{table(tables[split:])}
<p>Sample-ratio mismatch: {srm_txt}. Sample size: {s["sample_size"]["smallest_arm"]:,} of
{s["sample_size"]["required_per_arm"]:,} impressions per arm required
(relative MDE {s["sample_size"]["relative_mde"]:.0%}, baseline {s["sample_size"]["baseline_rate"]:.4f}).</p>
{imgs}<h2>Caveats</h2><ul>{caveats}</ul></body></html>"""


def write_report(analysis: Analysis, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.html``, ``summary.json``, ``summary.md`` and ``daily.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out / "report.html",
        "json": out / "summary.json",
        "markdown": out / "summary.md",
        "daily": out / "daily.csv",
    }
    paths["html"].write_text(render_html(analysis))
    paths["json"].write_text(json.dumps(analysis.summary, indent=2, default=str))
    paths["markdown"].write_text(summary_markdown(analysis.summary))
    daily = analysis.daily.copy()
    daily[DAY] = pd.to_datetime(daily[DAY]).dt.strftime("%Y-%m-%d")
    daily.to_csv(paths["daily"], index=False)
    return paths
