"""Blocking and warning data checks, declared as pandera schemas.

Why pandera for the checks: its schemas state the contract declaratively (types, nullability,
uniqueness, ranges, membership) and, with ``lazy=True``, return *every* failure as a table of
(column, check, row index) — exactly what we need to count bad rows per check. Evidently renders
those results as the human-readable HTML (see ``report.py``); its own drift tests cover the
distribution checks against a reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from smartreco.data import columns as C

BLOCKING, WARNING = "blocking", "warning"
RATING_MIN, RATING_MAX = 0.5, 5.0
#: Clock-skew allowance before a timestamp counts as "in the future".
FUTURE_TOLERANCE = pd.Timedelta(minutes=5)


@dataclass
class CheckResult:
    """One check on one table: ``bad_rows`` is the number of distinct failing rows (None: table-level)."""

    table: str
    column: str
    check: str
    severity: str
    passed: bool
    bad_rows: int | None
    message: str
    examples: list[str]

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}: {self.check}"

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name}


def _col(
    dtype=None, *checks: pa.Check, nullable: bool = False, unique: bool = False, required: bool = True
) -> pa.Column:
    return pa.Column(
        dtype,
        checks=list(checks),
        nullable=nullable,
        unique=unique,
        required=required,
        report_duplicates="exclude_first",
    )


def interaction_schemas(
    now: pd.Timestamp, known_users: pd.Index | None, known_items: pd.Index | None, max_age_days: float | None
) -> dict[str, pa.DataFrameSchema]:
    future = now + FUTURE_TOLERANCE
    item_checks = [pa.Check.isin(known_items, name="known_item")] if known_items is not None else []
    user_checks = [pa.Check.isin(known_users, name="known_user")] if known_users is not None else []
    blocking = pa.DataFrameSchema(
        {
            C.USER_ID: _col(str, *user_checks),
            C.ITEM_ID: _col(str, *item_checks),
            C.INTERACTION_TYPE: _col(str, pa.Check.isin(C.INTERACTION_TYPES, name="known_type")),
            C.TIMESTAMP: _col("datetime64[ns, UTC]", pa.Check.le(future, name="not_in_future")),
            C.INTERACTION_ID: _col(str, nullable=False, unique=True, required=False),
            C.RATING: _col(
                float, pa.Check.in_range(RATING_MIN, RATING_MAX, name="rating_range"), nullable=True, required=False
            ),
            C.CHANNEL: _col(str, pa.Check.isin(C.CHANNELS, name="known_channel"), nullable=True, required=False),
            C.DURATION: _col(float, pa.Check.ge(0, name="non_negative"), nullable=True, required=False),
        },
        name="interactions",
    )
    warn_checks = [
        pa.Check(
            lambda df: ~df.duplicated([c for c in (C.USER_ID, C.ITEM_ID, C.TIMESTAMP, C.INTERACTION_TYPE) if c in df]),
            name="duplicate_event",
        ),
    ]
    if max_age_days is not None:
        cutoff = now - pd.Timedelta(days=max_age_days)
        warn_checks.append(
            pa.Check(lambda df: bool(df[C.TIMESTAMP].max() >= cutoff), name=f"freshness_{max_age_days:g}d")
        )
    warning = pa.DataFrameSchema(checks=warn_checks, name="interactions")
    return {BLOCKING: blocking, WARNING: warning}


def item_schemas() -> dict[str, pa.DataFrameSchema]:
    blocking = pa.DataFrameSchema(
        {
            C.ITEM_ID: _col(str, unique=True),
            C.TITLE: _col(str, nullable=True),
            C.CATEGORY: _col(str, nullable=True),
            C.PRICE: _col(float, pa.Check.ge(0, name="price_non_negative"), nullable=True, required=False),
        },
        name="items",
    )
    warning = pa.DataFrameSchema(
        {
            C.TITLE: _col(
                str, pa.Check(lambda s: s.notna() & (s.astype(str).str.len() > 0), name="has_title"), nullable=True
            ),
            C.CATEGORY: _col(str, nullable=False),
        },
        name="items",
    )
    return {BLOCKING: blocking, WARNING: warning}


def user_schemas() -> dict[str, pa.DataFrameSchema]:
    return {BLOCKING: pa.DataFrameSchema({C.USER_ID: _col(str, unique=True)}, name="users")}


def _pretty_check(check: str) -> str:
    return {"not_nullable": "not_null", "field_uniqueness": "unique", "column_in_dataframe": "column_present"}.get(
        check, check.split("(")[0] if check.startswith(("dtype", "coerce")) else check
    )


def run_schema(
    df: pd.DataFrame, schema: pa.DataFrameSchema, severity: str, table: str
) -> tuple[list[CheckResult], pd.DataFrame]:
    """Validate lazily; return a result per declared check and a bool frame (rows x failed check)."""
    flags = pd.DataFrame(index=df.index)
    results: list[CheckResult] = []
    try:
        schema.validate(df, lazy=True)
        failures = pd.DataFrame(columns=["schema_context", "column", "check", "check_number", "index", "failure_case"])
    except SchemaErrors as exc:
        failures = exc.failure_cases.copy()
    names = _check_names(schema, table)
    frame_level = failures["schema_context"].astype(str).eq("DataFrameSchema")
    failures["column"] = failures["column"].where(~frame_level, table).fillna(table).astype(str)
    failures["check"] = [
        names.get((col, int(num)), _pretty_check(str(chk))) if pd.notna(num) else _pretty_check(str(chk))
        for col, num, chk in zip(failures["column"], failures["check_number"], failures["check"], strict=True)
    ]  # loop over failed checks' cases only, to map pandera's check repr back to our check name
    absent = failures["check"] == "column_present"  # pandera puts the missing column's name in failure_case
    failures.loc[absent, "column"] = failures.loc[absent, "failure_case"].astype(str)
    declared = _declared_checks(schema, df, table)
    seen = set()
    for (column, check), group in failures.groupby(["column", "check"], sort=False):
        seen.add((column, check))
        rows = group["index"].dropna()
        table_level = rows.empty
        bad = None if table_level else int(rows.nunique())
        examples = [str(v) for v in group["failure_case"].drop_duplicates().head(3)]
        msg = f"{table}.{column}: {check} failed" + ("" if table_level else f" for {bad} row(s)")
        if examples:
            msg += f" (e.g. {', '.join(examples)})"
        results.append(CheckResult(table, column, check, severity, False, bad, msg, examples))
        if not table_level:
            flags[f"{column}: {check}"] = df.index.isin(rows.astype(df.index.dtype, errors="ignore").to_numpy())
    for column, check in declared:
        if (column, check) not in seen:
            results.append(CheckResult(table, column, check, severity, True, 0, f"{table}.{column}: {check} ok", []))
            flags[f"{column}: {check}"] = np.zeros(len(df), dtype=bool)
    return results, flags


def _check_names(schema: pa.DataFrameSchema, table: str) -> dict[tuple[str, int], str]:
    names = {
        (col_name, i): str(chk.name) for col_name, col in schema.columns.items() for i, chk in enumerate(col.checks)
    }
    names.update({(table, i): str(chk.name) for i, chk in enumerate(schema.checks)})
    return names


def _declared_checks(schema: pa.DataFrameSchema, df: pd.DataFrame, table: str) -> list[tuple[str, str]]:
    """The (column, check) pairs a schema evaluates on this frame, so passing checks are reported too."""
    out: list[tuple[str, str]] = []
    for name, col in schema.columns.items():
        if name not in df.columns:
            if col.required:
                out.append((name, "column_present"))
            continue
        if not col.nullable:
            out.append((name, "not_null"))
        if col.unique:
            out.append((name, "unique"))
        out.extend((name, str(chk.name)) for chk in col.checks)
    out.extend((table, str(chk.name)) for chk in schema.checks)
    return out
