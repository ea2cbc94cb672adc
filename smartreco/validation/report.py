"""The HTML report (Evidently) and the distribution check against a reference (Evidently drift).

One Evidently document per run: for each table, a data summary plus one Evidently test per check
(``SumValue`` of that check's bad-row flag, expected 0; blocking checks are critical, warnings are
not), and for interactions the KS / chi-square drift tests against the reference when one is given.
The per-table sections are rendered by Evidently's own widget renderer into a single HTML file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartreco.data import columns as C
from smartreco.validation.checks import BLOCKING
from smartreco.validation.result import ValidationResult

DRIFT_COLUMNS = (C.RATING, C.INTERACTION_TYPE, C.CHANNEL, C.DEVICE_TYPE, "hour_of_day", C.DURATION)
CATEGORICAL = {C.INTERACTION_TYPE, C.CHANNEL, C.DEVICE_TYPE, C.CATEGORY, C.SUBCATEGORY, C.BRAND}
#: Rows sent to Evidently's summary/drift; check counts always come from the full table (the flags).
MAX_REPORT_ROWS = 50_000
#: The columns summarised per table (ids and free text are left out: slow and not informative).
SUMMARY_COLUMNS = {
    "interactions": (C.RATING, C.INTERACTION_TYPE, C.CHANNEL, C.DEVICE_TYPE, C.DURATION, C.TIMESTAMP),
    "items": (C.CATEGORY, C.SUBCATEGORY, C.BRAND, C.PRICE, C.CREATED_DATE),
    "users": (C.AGE_GROUP, C.GENDER, C.SUBSCRIPTION_TIER, C.REGISTRATION_DATE),
}
MAX_SUMMARY_ROWS = 20_000
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


def _table_snapshot(name: str, df: pd.DataFrame, flags: pd.DataFrame, result: ValidationResult):
    from evidently import Report
    from evidently.metrics import RowCount, SumValue
    from evidently.presets import DataSummaryPreset
    from evidently.tests import eq

    severity = {f"{c.column}: {c.check}": c.severity for c in result.checks if c.table == name}
    data_cols = [c for c in SUMMARY_COLUMNS.get(name, ()) if c in df and df[c].notna().any()]
    sample = df[data_cols].sample(n=min(len(df), MAX_SUMMARY_ROWS), random_state=0)
    metrics = [RowCount()]
    flag_frame = pd.DataFrame(index=flags.index)
    for col in flags.columns:
        label = f"[{name}] {col} (bad rows)"
        flag_frame[label] = flags[col].astype("int64")
        metrics.append(SumValue(column=label, tests=[eq(0, is_critical=severity.get(col, BLOCKING) == BLOCKING)]))
    checks = Report(metrics, include_tests=True).run(current_data=_dataset(flag_frame))
    summary = Report([DataSummaryPreset()]).run(current_data=_dataset(_summary_frame(sample))) if data_cols else None
    return checks, summary


def _summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.tz_localize(None) if getattr(out[col].dt, "tz", None) else out[col]
        elif out[col].dtype == object:
            out[col] = out[col].astype(str)
    return out


def write_html_report(result: ValidationResult, path: Path | str) -> Path:
    """Render the checks (as Evidently tests), data summaries and drift into one Evidently HTML file."""
    from evidently.core.metric_types import render_widgets
    from evidently.legacy.renderers.html_widgets import group_widget

    widgets = []
    for name, df in result.tables.items():
        checks, summary = _table_snapshot(name, df, result.flags.get(name, pd.DataFrame(index=df.index)), result)
        widgets.append(group_widget(title=f"{name}: checks ({len(df)} rows)", widgets=checks._widgets))
        widgets.extend(checks._tests_widgets)
        if summary is not None:
            widgets.append(group_widget(title=f"{name}: data summary", widgets=summary._widgets))
    if result.drift_snapshot is not None:
        widgets.append(
            group_widget(
                title="interactions: drift vs reference (KS / chi-square)", widgets=result.drift_snapshot._widgets
            )
        )
        widgets.extend(result.drift_snapshot._tests_widgets)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_widgets(widgets, as_iframe=False), encoding="utf-8")
    return path
