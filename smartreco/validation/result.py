"""Running the checks over raw tables and the machine-readable result (JSON, Markdown, KFP metrics)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData
from smartreco.errors import DataError
from smartreco.validation.checks import (
    BLOCKING,
    WARNING,
    CheckResult,
    interaction_schemas,
    item_schemas,
    run_schema,
    user_schemas,
)

ID_COLUMNS = {
    "interactions": (C.USER_ID, C.ITEM_ID, C.INTERACTION_ID, C.SESSION_ID),
    "items": (C.ITEM_ID,),
    "users": (C.USER_ID,),
}
NUMERIC_COLUMNS = {"interactions": (C.RATING, C.DURATION), "items": (C.PRICE,), "users": ()}
TIME_COLUMNS = {"interactions": (C.TIMESTAMP,), "items": (C.CREATED_DATE,), "users": (C.REGISTRATION_DATE,)}


class ValidationFailed(DataError):
    """A blocking check failed; the message lists each failed check and its count of bad rows."""


@dataclass
class ValidationResult:
    checks: list[CheckResult]
    row_counts: dict[str, int]
    flags: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    drift: dict | None = None
    #: the coerced tables the checks ran on (the HTML report renders them)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    drift_snapshot: object | None = field(default=None, repr=False)

    @property
    def blocking_failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed and c.severity == BLOCKING]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed and c.severity == WARNING]

    @property
    def passed(self) -> bool:
        return not self.blocking_failures

    def failure_message(self) -> str:
        parts = [
            f"{c.table}.{c.column} {c.check}: " + (f"{c.bad_rows} bad row(s)" if c.bad_rows is not None else "failed")
            for c in self.blocking_failures
        ]
        return "validation failed: " + "; ".join(parts)

    def raise_for_status(self) -> None:
        if not self.passed:
            raise ValidationFailed(self.failure_message())

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "blocking_failures": len(self.blocking_failures),
            "warnings": len(self.warnings),
            "row_counts": self.row_counts,
            "checks": [c.to_dict() for c in self.checks],
            "drift": self.drift,
        }

    def to_json(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str))

    def metrics(self) -> dict[str, float]:
        """Flat numbers for a KFP Metrics artifact."""
        out = {
            "passed": float(self.passed),
            "blocking_failures": float(len(self.blocking_failures)),
            "warnings": float(len(self.warnings)),
        }
        out.update({f"rows_{k}": float(v) for k, v in self.row_counts.items()})
        for c in self.checks:
            if not c.passed and c.bad_rows is not None:
                out[f"bad_rows.{c.table}.{c.column}.{c.check}"] = float(c.bad_rows)
        return out

    def to_markdown(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        lines = [
            f"# Data validation: {status}",
            "",
            f"{len(self.blocking_failures)} blocking failure(s), {len(self.warnings)} warning(s); rows: "
            + ", ".join(f"{k}={v}" for k, v in self.row_counts.items()),
            "",
            "| table | column | check | severity | result | bad rows |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for c in sorted(self.checks, key=lambda c: (c.passed, c.severity != BLOCKING, c.table)):
            lines.append(
                f"| {c.table} | {c.column} | {c.check} | {c.severity} | {'ok' if c.passed else 'FAIL'} | "
                f"{'' if c.bad_rows is None else c.bad_rows} |"
            )
        if self.drift:
            lines += [
                "",
                f"Drift vs reference: {self.drift.get('drifted_columns')} of {self.drift.get('columns')} "
                "column(s) drifted (KS / chi-square, p < 0.05).",
            ]
        return "\n".join(lines) + "\n"


def _coerce(df: pd.DataFrame, table: str) -> tuple[pd.DataFrame, list[CheckResult]]:
    """Types the checks expect; values that cannot be parsed become nulls and a failed ``type`` check."""
    out = df.copy()
    results: list[CheckResult] = []
    for col in ID_COLUMNS[table]:
        if col in out:
            s = out[col]
            if pd.api.types.is_float_dtype(s):
                s = s.map(lambda v: v if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
            out[col] = s.where(s.isna(), s.astype(str)).astype(object)
    for col in NUMERIC_COLUMNS[table]:
        if col in out:
            parsed = pd.to_numeric(out[col], errors="coerce").astype("float64")
            results.append(_type_result(table, col, out[col], parsed, "numeric"))
            out[col] = parsed
    for col in TIME_COLUMNS[table]:
        if col in out:
            raw = out[col]
            if pd.api.types.is_datetime64_any_dtype(raw):
                parsed = pd.to_datetime(raw, utc=True)
            elif pd.api.types.is_numeric_dtype(raw):
                parsed = pd.to_datetime(raw, unit="s", utc=True, errors="coerce")
            else:
                parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
            results.append(_type_result(table, col, raw, parsed, "timestamp"))
            out[col] = parsed.astype("datetime64[ns, UTC]")
    return out, results


def _type_result(table: str, col: str, raw: pd.Series, parsed: pd.Series, kind: str) -> CheckResult:
    bad = parsed.isna() & raw.notna()
    n = int(bad.sum())
    examples = [str(v) for v in raw[bad].head(3)]
    msg = f"{table}.{col}: {n} value(s) are not {kind}" + (f" (e.g. {', '.join(examples)})" if n else "")
    return CheckResult(table, col, f"type_{kind}", BLOCKING, n == 0, n, msg, examples)


def load_raw(source: str | Path) -> dict[str, pd.DataFrame]:
    """Raw tables of a source: a canonical folder is read as-is; movielens/synthetic via their loaders."""
    from smartreco.data.io import TABLES, _find_table, read_table

    path = Path(source)
    if path.is_dir() and not (path / "ratings.csv").exists():
        found = {name: _find_table(path, name) for name in TABLES}
        for name in ("interactions", "items"):
            if found[name] is None:
                raise DataError(f"{path}: no {name}.csv, {name}.parquet or {name}/ found")
        return {name: read_table(p) for name, p in found.items() if p is not None}
    from smartreco.data.sources import load_source

    data = load_source(str(source))
    return {"interactions": data.interactions, "items": data.items, "users": data.users}


def tables_of(data: CanonicalData | dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(data, CanonicalData):
        return {"interactions": data.interactions, "items": data.items, "users": data.users}
    return dict(data)


def validate_data(
    data: CanonicalData | dict[str, pd.DataFrame],
    *,
    reference: CanonicalData | dict | None = None,
    now: pd.Timestamp | None = None,
    max_age_days: float | None = 30.0,
) -> ValidationResult:
    """Run every check; the result says which failed, how many rows, and whether any was blocking."""
    tables = tables_of(data)
    if "interactions" not in tables or "items" not in tables:
        raise DataError("validation needs at least interactions and items tables")
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    checks: list[CheckResult] = []
    coerced: dict[str, pd.DataFrame] = {}
    for name, df in tables.items():
        coerced[name], type_results = _coerce(df.reset_index(drop=True), name)
        checks += type_results
    items, users = coerced["items"], coerced.get("users")
    known_items = pd.Index(items[C.ITEM_ID].dropna().unique()) if C.ITEM_ID in items else None
    known_users = pd.Index(users[C.USER_ID].dropna().unique()) if users is not None and C.USER_ID in users else None
    schemas = {
        "interactions": interaction_schemas(now, known_users, known_items, max_age_days),
        "items": item_schemas(),
        "users": user_schemas(),
    }
    flags: dict[str, pd.DataFrame] = {}
    for name, df in coerced.items():
        frames = []
        for severity, schema in schemas[name].items():
            results, f = run_schema(df, schema, severity, name)
            checks += results
            frames.append(f)
        flags[name] = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=df.index)
    for c in checks:  # a type failure is also a row flag, so the report shows its count
        if c.check.startswith("type_") and c.table in flags:
            raw = tables[c.table][c.column].reset_index(drop=True)
            flags[c.table][f"{c.column}: {c.check}"] = (coerced[c.table][c.column].isna() & raw.notna()).to_numpy()
    result = ValidationResult(
        checks=checks, row_counts={k: len(v) for k, v in coerced.items()}, flags=flags, tables=coerced
    )
    if reference is not None:
        from smartreco.validation.report import drift_summary

        ref = {k: _coerce(v.reset_index(drop=True), k)[0] for k, v in tables_of(reference).items()}
        result.drift, result.drift_snapshot = drift_summary(coerced["interactions"], ref["interactions"])
        if result.drift["drifted_columns"]:
            checks.append(
                CheckResult(
                    "interactions",
                    "*",
                    "distribution_drift",
                    WARNING,
                    False,
                    None,
                    result.drift["message"],
                    result.drift["drifted"],
                )
            )
        else:
            checks.append(
                CheckResult("interactions", "*", "distribution_drift", WARNING, True, 0, result.drift["message"], [])
            )
    return result
