"""The validation HTML report and the distribution check against a reference (Evidently drift).

The report answers "did the data pass?" first: a pass/fail table of every check, failures first
(blocking, then warnings), with the bad-row counts and examples. Plots appear only where they tell
something: a histogram (bad rows in red) for each numeric column whose check failed, and the drift
p-values per column when a reference was given. Plain HTML with inline SVG, no scripts: a few tens of
kB (the Evidently-rendered report it replaces was about 4 MB, too big for the Kubeflow UI to show
inline, and drew every passing check as a full histogram of "0 bad rows").
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.validation.checks import BLOCKING
from smartreco.validation.result import ValidationResult

DRIFT_COLUMNS = (C.RATING, C.INTERACTION_TYPE, C.CHANNEL, C.DEVICE_TYPE, "hour_of_day", C.DURATION)
CATEGORICAL = {C.INTERACTION_TYPE, C.CHANNEL, C.DEVICE_TYPE, C.CATEGORY, C.SUBCATEGORY, C.BRAND}
#: Rows sent to Evidently's summary/drift; check counts always come from the full table (the flags).
MAX_REPORT_ROWS = 50_000
DRIFT_P_VALUE = 0.05


def _drift_frame(inter: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=inter.index)
    for col in DRIFT_COLUMNS:
        if col == "hour_of_day" and C.TIMESTAMP in inter:
            out[col] = inter[C.TIMESTAMP].dt.hour.astype("float64")
        elif col in inter and inter[col].notna().any():
            out[col] = inter[col].astype(str) if col in CATEGORICAL else inter[col].astype("float64")
    return out


def _definition(df: pd.DataFrame):
    from evidently import DataDefinition

    cats = [c for c in df.columns if c in CATEGORICAL or df[c].dtype == object]
    nums = [c for c in df.columns if c not in cats and (pd.api.types.is_numeric_dtype(df[c]))]
    return DataDefinition(numerical_columns=nums, categorical_columns=cats)


def _dataset(df: pd.DataFrame):
    from evidently import Dataset

    return Dataset.from_pandas(df, data_definition=_definition(df))


def drift_summary(current: pd.DataFrame, reference: pd.DataFrame) -> tuple[dict, object]:
    """KS (numeric) / chi-square (categorical) drift per column; a warning-level check."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    cur = _drift_frame(current).sample(n=min(len(current), MAX_REPORT_ROWS), random_state=0)
    ref = _drift_frame(reference)
    ref = ref.sample(n=min(len(ref), MAX_REPORT_ROWS), random_state=0)
    cols = [c for c in cur.columns if c in ref.columns]
    snap = Report(
        [
            DataDriftPreset(
                columns=cols,
                num_method="ks",
                cat_method="chisquare",
                num_threshold=DRIFT_P_VALUE,
                cat_threshold=DRIFT_P_VALUE,
            )
        ]
    ).run(current_data=_dataset(cur[cols]), reference_data=_dataset(ref[cols]))
    per_column: dict[str, float] = {}
    for m in snap.dict()["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            per_column[cfg["column"]] = float(m["value"])
    drifted = sorted(c for c, p in per_column.items() if p < DRIFT_P_VALUE)
    return {
        "columns": len(per_column),
        "drifted_columns": len(drifted),
        "drifted": drifted,
        "p_values": per_column,
        "message": f"interactions: {len(drifted)} of {len(per_column)} column(s) drifted vs reference"
        + (f" ({', '.join(drifted)})" if drifted else ""),
    }, snap


#: bins of the histogram drawn for a failed numeric column
HIST_BINS = 24


def _svg_bars(bars: list[tuple[str, float, float]], title: str, width: int = 560, height: int = 160) -> str:
    """Stacked bars (label, ok, bad): ok in grey, bad in red; an accessible inline SVG."""
    top = max((ok + bad for _, ok, bad in bars), default=0) or 1
    bw = (width - 40) / max(len(bars), 1)
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for i, (label, ok, bad) in enumerate(bars):
        x = 30 + i * bw
        h_ok, h_bad = (height - 30) * ok / top, (height - 30) * bad / top
        out.append(f'<rect x="{x:.1f}" y="{height - 20 - h_ok:.1f}" width="{bw * 0.9:.1f}" height="{h_ok:.1f}" '
                   f'fill="#9aa5b1"><title>{escape(label)}: {ok:g}</title></rect>')
        if bad:
            out.append(f'<rect x="{x:.1f}" y="{height - 20 - h_ok - h_bad:.1f}" width="{bw * 0.9:.1f}" '
                       f'height="{h_bad:.1f}" fill="#c62828"><title>{escape(label)}: {bad:g} bad</title></rect>')
    if bars:
        out.append(f'<text x="30" y="{height - 5}" font-size="10">{escape(bars[0][0])}</text>')
        out.append(f'<text x="{width - 10}" y="{height - 5}" font-size="10" text-anchor="end">'
                   f'{escape(bars[-1][0])}</text>')
    out.append("</svg>")
    return "".join(out)


def _failed_histogram(df: pd.DataFrame, flags: pd.DataFrame, column: str, flag: str) -> str | None:
    """Histogram of a numeric column with its failing rows in red (None: not numeric / nothing to draw)."""
    if column not in df or flag not in flags or not pd.api.types.is_numeric_dtype(df[column]):
        return None
    values = df[column].astype("float64")
    bad = flags[flag].reindex(df.index, fill_value=False).astype(bool)
    finite = values[np.isfinite(values)]
    if finite.empty:
        return None
    edges = np.histogram_bin_edges(finite, bins=HIST_BINS)
    ok_counts, _ = np.histogram(finite[~bad.loc[finite.index]], bins=edges)
    bad_counts, _ = np.histogram(finite[bad.loc[finite.index]], bins=edges)
    bars = [(f"{edges[i]:.3g}", float(ok_counts[i]), float(bad_counts[i])) for i in range(len(ok_counts))]
    return _svg_bars(bars, f"{column}: distribution, failing rows in red")


def _check_rows(result: ValidationResult) -> list:
    """Failures first (blocking, then warnings), then the passing checks; stable by table/column."""
    return sorted(result.checks, key=lambda c: (c.passed, c.severity != BLOCKING, c.table, c.column, c.check))


def render_html(result: ValidationResult) -> str:
    """The whole report as one small HTML document (see the module docstring for what it shows)."""
    status = "PASSED" if result.passed else "FAILED"
    n_fail = len(result.blocking_failures)
    n_warn = len(result.warnings)
    css = ("body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a}table{border-collapse:collapse}"
           "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
           ".fail{background:#fdecea}.warn{background:#fff6e0}.ok{color:#2e7d32}.bad{color:#c62828;font-weight:bold}"
           "caption{font-weight:bold;text-align:left;padding:.3rem 0}")
    parts = [f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Data validation: {status}</title>'
             f"<style>{css}</style></head><body>",
             f'<h1>Data validation: <span class="{"ok" if result.passed else "bad"}">{status}</span></h1>',
             f"<p>{n_fail} blocking failure(s), {n_warn} warning(s), {len(result.checks)} checks; rows: "
             + ", ".join(f"{escape(k)} {v:,}" for k, v in result.row_counts.items()) + "</p>",
             "<table><caption>Checks (failures first)</caption><thead><tr><th scope=col>result</th>"
             "<th scope=col>severity</th><th scope=col>table</th><th scope=col>column</th><th scope=col>check</th>"
             "<th scope=col>bad rows</th><th scope=col>details</th></tr></thead><tbody>"]
    for c in _check_rows(result):
        cls = "" if c.passed else ("fail" if c.severity == BLOCKING else "warn")
        verdict = "pass" if c.passed else ("FAIL" if c.severity == BLOCKING else "warn")
        detail = "" if c.passed else escape(c.message)  # the message names examples of bad values
        parts.append(f'<tr class="{cls}"><td>{verdict}</td><td>{c.severity}</td><td>{escape(c.table)}</td>'
                     f"<td>{escape(c.column)}</td><td>{escape(c.check)}</td>"
                     f"<td>{'' if c.bad_rows is None else f'{c.bad_rows:,}'}</td><td>{detail}</td></tr>")
    parts.append("</tbody></table>")
    plots = []
    for c in _check_rows(result):
        if c.passed or not c.bad_rows:
            continue
        df = result.tables.get(c.table)
        flags = result.flags.get(c.table)
        svg = None if df is None or flags is None else _failed_histogram(df, flags, c.column, f"{c.column}: {c.check}")
        if svg:
            plots.append(f"<figure>{svg}<figcaption>{escape(c.name)}: {c.bad_rows:,} failing row(s) in red"
                         "</figcaption></figure>")
    if plots:
        parts.append("<h2>Failed checks, where the bad rows fall</h2>" + "".join(plots))
    if result.drift:
        p_values = result.drift.get("p_values") or {}
        parts.append(f"<h2>Drift vs reference</h2><p>{escape(result.drift.get('message', ''))} "
                     f"(KS / chi-square; a column drifted when p &lt; {DRIFT_P_VALUE}).</p>")
        if result.drift.get("drifted"):
            bars = [(col, 0.0 if p < DRIFT_P_VALUE else 1.0 - p, 1.0 - p if p < DRIFT_P_VALUE else 0.0)
                    for col, p in sorted(p_values.items())]
            parts.append(f"<figure>{_svg_bars(bars, 'drift: 1 - p-value per column, drifted in red')}"
                         "<figcaption>1 - p per column; red: drifted</figcaption></figure>")
        rows = "".join(f"<tr><td>{escape(col)}</td><td>{p:.3g}</td><td>{'yes' if p < DRIFT_P_VALUE else 'no'}</td></tr>"
                       for col, p in sorted(p_values.items(), key=lambda t: t[1]))
        parts.append("<table><thead><tr><th scope=col>column</th><th scope=col>p-value</th><th scope=col>drifted"
                     f"</th></tr></thead><tbody>{rows}</tbody></table>")
    parts.append("</body></html>")
    return "".join(parts)


def write_html_report(result: ValidationResult, path: Path | str) -> Path:
    """Write :func:`render_html` to ``path`` (a KFP HTML artifact: small enough to show inline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result), encoding="utf-8")
    return path
