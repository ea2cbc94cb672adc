"""Data and prediction drift against the training reference, with Evidently's statistical tests.

``DataDriftPreset(num_method="ks", cat_method="chisquare")``: every column gets a p-value
(two-sample Kolmogorov-Smirnov for numbers, chi-square for categories) instead of Evidently's
default distances (Wasserstein / Jensen-Shannon above 1000 rows, which are not p-values; see
STACK_NOTES). A column drifts when its p-value is below ``alpha``; a view (interactions, features,
predictions) drifts when the share of its drifted columns reaches ``drift_share``; the run's
decision is the share of drifted columns over all views against ``threshold``.

Both sides are subsampled to ``max_rows`` (seeded) so a check on 10M events costs the same as on
100k, and KS on huge samples does not flag distribution differences too small to matter.
Columns constant on both sides (e.g. MovieLens' single channel) carry no test and are skipped.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from smartreco.data.canonical import CanonicalData
from smartreco.errors import DataError
from smartreco.monitoring import frames as Fr

NUM_METHOD, CAT_METHOD = "ks", "chisquare"
DEFAULT_ALPHA = 0.05
DEFAULT_THRESHOLD = 0.3
DEFAULT_MAX_ROWS = 20_000


@dataclass
class ColumnDrift:
    column: str
    kind: str  # numerical | categorical
    method: str
    p_value: float
    drifted: bool


@dataclass
class ViewDrift:
    """One view (interactions / features / predictions): per-column tests and the view's verdict."""

    name: str
    rows_reference: int
    rows_current: int
    columns: list[ColumnDrift] = field(default_factory=list)
    drift_share: float = 0.5
    html: str | None = None

    @property
    def n_drifted(self) -> int:
        return sum(c.drifted for c in self.columns)

    @property
    def share(self) -> float:
        return self.n_drifted / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.columns) and self.share >= self.drift_share


@dataclass
class DriftResult:
    """The run's decision plus everything behind it (what the JSON artifact holds)."""

    views: list[ViewDrift]
    threshold: float
    alpha: float
    seconds: float = 0.0

    @property
    def n_columns(self) -> int:
        return sum(len(v.columns) for v in self.views)

    @property
    def share(self) -> float:
        return sum(v.n_drifted for v in self.views) / self.n_columns if self.n_columns else 0.0

    @property
    def drift_detected(self) -> bool:
        return self.n_columns > 0 and self.share >= self.threshold

    def to_dict(self) -> dict:
        return {
            "drift_detected": self.drift_detected,
            "drifted_share": round(self.share, 6),
            "threshold": self.threshold,
            "alpha": self.alpha,
            "methods": {"numerical": NUM_METHOD, "categorical": CAT_METHOD},
            "seconds": round(self.seconds, 3),
            "views": {
                v.name: {
                    "drifted": v.drifted,
                    "drifted_share": round(v.share, 6),
                    "drift_share": v.drift_share,
                    "rows_reference": v.rows_reference,
                    "rows_current": v.rows_current,
                    "html": v.html,
                    "columns": {c.column: {k: val for k, val in asdict(c).items() if k != "column"} for c in v.columns},
                }
                for v in self.views
            },
        }

    def write_json(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def metrics(self) -> dict[str, float]:
        """Flat numbers for KFP Metrics / Prometheus."""
        out = {"drift_detected": float(self.drift_detected), "drifted_share": self.share,
               "drift_threshold": self.threshold}
        for v in self.views:
            out[f"{v.name}_drifted_share"] = v.share
            for c in v.columns:
                out[f"{v.name}.{c.column}.p_value"] = c.p_value
        return out

    def to_markdown(self) -> str:
        verdict = "**DRIFT DETECTED**" if self.drift_detected else "no drift"
        lines = [
            "# Drift report",
            "",
            f"Verdict: {verdict}: {self.share:.0%} of {self.n_columns} columns drifted "
            f"(threshold {self.threshold:.0%}; column drifts when p < {self.alpha}; "
            f"tests: KS for numbers, chi-square for categories).",
            "",
            "| view | column | test | p-value | drifted |",
            "| --- | --- | --- | ---: | --- |",
        ]
        for v in self.views:
            for c in v.columns:
                flag = "yes" if c.drifted else "no"
                lines.append(f"| {v.name} | {c.column} | {c.method} | {c.p_value:.3g} | {flag} |")
        return "\n".join(lines) + "\n"


def _sample(df: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return df.sample(n=max_rows, random_state=seed) if max_rows and len(df) > max_rows else df


def _testable(ref: pd.DataFrame, cur: pd.DataFrame, cols: list[str]) -> list[str]:
    """Columns with at least two distinct values over both sides and some non-null data on each."""
    keep = []
    for col in cols:
        r, c = ref[col].dropna(), cur[col].dropna()
        if r.empty or c.empty:
            continue
        if pd.concat([r, c], ignore_index=True).nunique() < 2:
            continue
        keep.append(col)
    return keep


def compare_frames(
    name: str,
    reference: Fr.Frame,
    current: Fr.Frame,
    *,
    alpha: float = DEFAULT_ALPHA,
    drift_share: float = 0.5,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 7,
    html_path: Path | str | None = None,
) -> ViewDrift:
    """Run Evidently's DataDriftPreset (KS / chi-square) on one view; optional HTML report."""
    if len(reference.data) == 0 or len(current.data) == 0:
        side = "reference" if len(reference.data) == 0 else "current"
        raise DataError(f"drift: {name} has no rows in the {side} data")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = _sample(reference.data, max_rows, seed), _sample(current.data, max_rows, seed + 1)
    num = _testable(ref, cur, [c for c in reference.numerical if c in current.data])
    cat = _testable(ref, cur, [c for c in reference.categorical if c in current.data])
    view = ViewDrift(name, len(ref), len(cur), drift_share=drift_share)
    if not num and not cat:
        return view
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    report = Report([DataDriftPreset(columns=[*num, *cat], num_method=NUM_METHOD, cat_method=CAT_METHOD,
                                     threshold=alpha, drift_share=drift_share)])
    with warnings.catch_warnings():  # Evidently's own divide-by-zero on empty bins; the p-values are fine
        warnings.simplefilter("ignore", RuntimeWarning)
        snap = report.run(
            current_data=Dataset.from_pandas(cur[[*num, *cat]].reset_index(drop=True), data_definition=definition),
            reference_data=Dataset.from_pandas(ref[[*num, *cat]].reset_index(drop=True), data_definition=definition),
        )
    p_values = _p_values(snap.dict())
    for col in [*num, *cat]:
        if col not in p_values:
            raise DataError(f"drift: Evidently returned no p-value for {name}.{col}")
        p = p_values[col]
        view.columns.append(ColumnDrift(col, "numerical" if col in num else "categorical",
                                        NUM_METHOD if col in num else CAT_METHOD, p, bool(p < alpha)))
    if html_path is not None:
        html_path = Path(html_path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snap.save_html(str(html_path))
        view.html = str(html_path)
    return view


def _p_values(snapshot: dict) -> dict[str, float]:
    """``ValueDrift(column=...)`` metric values (p-values with ks / chisquare) by column."""
    out = {}
    for metric in snapshot.get("metrics", []):
        cfg = metric.get("config", {})
        if str(cfg.get("type", "")).endswith("ValueDrift") and "column" in cfg:
            out[str(cfg["column"])] = float(metric["value"])
    return out


def check_drift(
    reference: CanonicalData,
    current: CanonicalData,
    out_dir: Path | str | None = None,
    *,
    reference_predictions: pd.DataFrame | None = None,
    current_predictions: pd.DataFrame | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 7,
) -> DriftResult:
    """Interactions + user features (+ predictions when both logs are given) vs the reference.

    Writes ``drift_<view>.html``, ``drift.json`` and ``drift.md`` into ``out_dir`` when given."""
    if not 0.0 < threshold <= 1.0:
        raise DataError(f"drift: threshold must be in (0, 1], got {threshold}")
    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    counts = Fr.item_counts(reference.interactions)
    pairs = [
        ("interactions",
         Fr.interaction_frame(reference.interactions, reference.items, counts, leave_one_out=True),
         Fr.interaction_frame(current.interactions, current.items, counts)),
        ("features",
         Fr.user_feature_frame(reference.interactions, reference.items),
         Fr.user_feature_frame(current.interactions, current.items)),
    ]
    if reference_predictions is not None and current_predictions is not None:
        pairs.append(("predictions", Fr.prediction_frame(reference_predictions),
                      Fr.prediction_frame(current_predictions)))
    views = []
    from tqdm.auto import tqdm

    for name, ref, cur in tqdm(pairs, desc="drift", unit="view"):
        views.append(compare_frames(name, ref, cur, alpha=alpha, max_rows=max_rows, seed=seed,
                                    html_path=out / f"drift_{name}.html" if out else None))
    result = DriftResult(views, threshold, alpha, time.perf_counter() - t0)
    if out is not None:
        result.write_json(out / "drift.json")
        (out / "drift.md").write_text(result.to_markdown())
    return result
