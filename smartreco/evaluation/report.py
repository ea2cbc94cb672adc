"""Human-readable outputs of an evaluation: a self-contained HTML report (charts as base64 PNG, so the
Kubeflow UI and a mail client show it without extra files) and a Markdown summary (KFP Markdown
artifact, benchmark results, PR comments)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.evaluation import metrics as M
from smartreco.evaluation.evaluator import ACTIVITY, EvaluationResult

TABLE_COLUMNS: tuple[str, ...] = (
    *(M.metric_key(m) for m in M.RANKING_METRICS),
    M.COVERAGE, M.DIVERSITY, M.NOVELTY, M.POPULAR_SHARE, M.FIT_SECONDS, M.MS_PER_USER,
)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return "" if value is None else str(value)


def metrics_table(result_json: dict, columns: tuple[str, ...] = TABLE_COLUMNS) -> pd.DataFrame:
    """Models x metrics, best NDCG@10 first."""
    rows = {name: {c: m.get(c) for c in columns} for name, m in result_json["models"].items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(columns))
    key = M.metric_key(M.NDCG)
    return table.sort_values(key, ascending=False) if key in table and len(table) else table


def comparisons_table(result_json: dict, comparisons: dict | None = None) -> pd.DataFrame:
    """One row per (model, reference) paired-bootstrap comparison."""
    rows = []
    comps = result_json.get("comparisons", {}) if comparisons is None else comparisons
    for name, entry in comps.get("by_model", {}).items():
        for kind, comp in entry.items():
            rows.append({
                "model": name, "vs": comp["reference"], "kind": kind, "diff": comp["mean_diff"],
                "ci_low": comp["ci_low"], "ci_high": comp["ci_high"], "p_not_better": comp["p_not_better"],
                "significant": comp["significant"],
            })
    return pd.DataFrame(rows)


def _md_table(frame: pd.DataFrame, index_name: str | None = None) -> str:
    cols = ([index_name] if index_name else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = ([str(idx)] if index_name else []) + [_fmt(v) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_summary(result_json: dict, title: str = "Offline evaluation") -> str:
    """Markdown: protocol line, metrics table, bootstrap comparisons, skipped models."""
    proto = result_json.get("protocol", {})
    comps = result_json.get("comparisons", {})
    parts = [f"## {title}", ""]
    parts.append(
        f"Protocol: {proto.get('split', 'per-user temporal hold-out')}, "
        f"last {proto.get('test_fraction', 0.2):.0%} (ceil) of each user's interactions to test, "
        f"users with < {proto.get('min_interactions', 5)} stay in train; "
        f"targets = {proto.get('targets', 'test positives')}; k = {proto.get('k', M.DEFAULT_K)}; "
        f"{proto.get('evaluated_users', '?')} users evaluated over {proto.get('catalogue_items', '?')} items"
        + (f"; source `{proto['source']}`" if "source" in proto else "") + "."
    )
    parts += ["", _md_table(metrics_table(result_json), index_name="model"), ""]
    comp = comparisons_table(result_json)
    if len(comp):
        parts.append(f"Paired bootstrap ({comps.get('samples')} resamples of users, 95% CI) of the "
                     f"{comps.get('metric', 'ndcg@10')} difference; best peer: **{comps.get('best_peer')}**.")
        parts += ["", _md_table(comp.set_index("model"), index_name="model"), ""]
    for key, more in (result_json.get("more_comparisons") or {}).items():
        table = comparisons_table(result_json, more)
        if len(table):
            parts.append(f"The same on {key}; best peer on it: **{more.get('best_peer')}**.")
            parts += ["", _md_table(table.set_index("model"), index_name="model"), ""]
    parts += ablation_markdown(result_json)
    reads = proto.get("target_reads")
    if reads:
        parts.append(f"Reads of the {reads['split']} targets in this run: **{reads['count']}** "
                     f"({', '.join(reads['configurations'])}).")
        parts.append("")
    skipped = result_json.get("skipped") or {}
    if skipped:
        reasons = "; ".join(f"`{k}`: {v}" for k, v in skipped.items())
        parts.append(f"Skipped (could not be imported): {reasons}")
        parts.append("")
    return "\n".join(parts)


def ablation_markdown(result_json: dict) -> list[str]:
    """The ablation table (variant, its metrics, paired CI of variant - full hybrid per metric)."""
    abl = result_json.get("ablation") or {}
    if not abl.get("variants"):
        return []
    rows = {}
    for name, v in abl["variants"].items():
        row = {"dropped": ", ".join(v["dropped_sources"]) or "features: " + ", ".join(v["dropped_features"])}
        for key, comp in v["vs_full"].items():
            row[key] = v["metrics"][key]
            row[f"{key} diff [95% CI]"] = (f"{comp['mean_diff']:+.4f} [{comp['ci_low']:+.4f}, "
                                          f"{comp['ci_high']:+.4f}]")
            row[f"{key} worse"] = comp["ci_high"] < 0
        rows[name] = row
    head = (f"Ablation: the hybrid without one retriever (its candidates and score/rank features) or one "
            f"feature group, ranker retrained with the full model's {abl.get('rounds')} rounds on the same "
            f"training rows, same candidate pools; paired bootstrap of variant - {abl.get('reference')} "
            f"(`worse` = CI entirely below 0).")
    tail = []
    if abl.get("not_run"):
        tail = [f"Not run within the ablation's time budget ({abl.get('budget_s'):.0f} s): "
                f"{', '.join(abl['not_run'])}.", ""]
    return [head, "", _md_table(pd.DataFrame.from_dict(rows, orient="index"), index_name="variant"), "", *tail]


# --- charts --------------------------------------------------------------------------------------


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 8.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def metric_bars(result_json: dict) -> str:
    keys = [M.metric_key(m) for m in M.RANKING_METRICS]
    table = metrics_table(result_json, tuple(keys))
    fig, ax = _figure()
    width = 0.8 / max(1, len(table))
    x = np.arange(len(keys))
    for i, (name, row) in enumerate(table.iterrows()):
        ax.bar(x + i * width, row.to_numpy(dtype=float), width, label=str(name))
    ax.set_xticks(x + 0.4 - width / 2, keys)
    ax.set_title("Ranking metrics @10 per model")
    ax.legend(fontsize=8)
    return _png(fig)


def activity_buckets(activity: pd.Series, n_buckets: int = 4) -> pd.Series:
    """Quantile buckets of train activity as an ordered categorical labelled ``Q1 (16-35)`` etc."""
    codes = pd.qcut(activity.rank(method="first"), q=min(n_buckets, max(1, len(activity))), labels=False)
    bounds = activity.groupby(codes).agg(["min", "max"])
    labels = [f"Q{i + 1} ({int(lo)}-{int(hi)})" for i, (lo, hi) in enumerate(bounds.to_numpy())]
    return pd.Series(pd.Categorical.from_codes(codes.to_numpy(), labels, ordered=True), index=activity.index)


def ndcg_by_activity(result: EvaluationResult) -> tuple[str, pd.DataFrame]:
    """Mean NDCG@10 per activity quartile and model (every model is scored on the same users)."""
    frames = {name: res.per_user for name, res in result.models.items()}
    if not frames:
        return "", pd.DataFrame()
    buckets = activity_buckets(next(iter(frames.values()))[ACTIVITY])
    table = pd.DataFrame({
        name: f[M.NDCG].groupby(buckets.reindex(f.index), observed=True).mean() for name, f in frames.items()
    })
    fig, ax = _figure()
    width = 0.8 / max(1, table.shape[1])
    x = np.arange(len(table))
    for i, name in enumerate(table.columns):
        ax.bar(x + i * width, table[name].to_numpy(dtype=float), width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, [str(b) for b in table.index], fontsize=8)
    ax.set_xlabel("train interactions per user")
    ax.set_ylabel("NDCG@10")
    ax.set_title("NDCG@10 by user activity (quartiles)")
    ax.legend(fontsize=8)
    return _png(fig), table


def popularity_bias(result_json: dict) -> str:
    fig, ax = _figure(6.0, 4.0)
    for name, m in result_json["models"].items():
        ax.scatter(m[M.POPULAR_SHARE], m[M.NOVELTY], s=60)
        ax.annotate(name, (m[M.POPULAR_SHARE], m[M.NOVELTY]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("share of recommendations from the top-10% popular items")
    ax.set_ylabel("novelty (mean -log2 popularity)")
    ax.set_title("Popularity bias")
    return _png(fig)


def render_html(result: EvaluationResult, title: str = "SmartReco offline evaluation") -> str:
    """A self-contained HTML page: summary tables, metric bars, NDCG by activity, popularity bias."""
    data = result.to_json()
    bucket_png, bucket_table = ndcg_by_activity(result)
    metrics_html = metrics_table(data).to_html(float_format=lambda v: f"{v:.4f}", border=0)
    comp = comparisons_table(data)
    comp_html = (comp.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)
                 if len(comp) else "<p>none</p>")
    proto = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>"
                    for k, v in data["protocol"].items())
    skipped = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in data["skipped"].items())

    def img(b64: str, alt: str) -> str:
        return f'<img alt="{alt}" src="data:image/png;base64,{b64}"/>' if b64 else ""

    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}} img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Protocol</h2><ul>{proto}</ul>
<h2>Metrics</h2>{metrics_html}
{img(metric_bars(data), "metric bars")}
<h2>Paired bootstrap vs best peer (NDCG@10)</h2>{comp_html}
<h2>NDCG@10 by user activity</h2>{bucket_table.to_html(float_format=lambda v: f"{v:.4f}", border=0)}
{img(bucket_png, "ndcg by activity")}
<h2>Popularity bias</h2>{img(popularity_bias(data), "popularity bias")}
{f"<h2>Skipped models</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""


def write_html(result: EvaluationResult, path: Path | str,
               title: str = "SmartReco offline evaluation") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result, title), encoding="utf-8")
    return path
