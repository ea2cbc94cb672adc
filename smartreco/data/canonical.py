"""The canonical tables (ARCHITECTURE §3): coercion and contract checks for user-supplied data.

Every loader (MovieLens, synthetic, a user's CSV/parquet folder) ends in :func:`canonicalize`, so
the rest of the system can rely on one set of dtypes: ids are strings, timestamps are UTC
``datetime64[ns, UTC]``, tags are lists of strings. Violations raise :class:`DataError` with one
line that names the table, the column and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError


@dataclass
class CanonicalData:
    """Interactions, items and users in canonical form, plus where they came from."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source: str = "unknown"
    meta: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """Counts, sparsity, positive share and date range — what `smartreco data describe` prints."""
        inter = self.interactions
        n_users, n_items, n = len(self.users), len(self.items), len(inter)
        ts = inter[C.TIMESTAMP]
        return {
            "source": self.source,
            "users": int(n_users),
            "items": int(n_items),
            "interactions": int(n),
            "users_with_interactions": int(inter[C.USER_ID].nunique()),
            "items_with_interactions": int(inter[C.ITEM_ID].nunique()),
            "sparsity": float(1.0 - n / max(1, n_users * n_items)),
            "positive_share": float(positive_mask(inter).mean()) if n else 0.0,
            "interaction_types": {str(k): int(v) for k, v in inter[C.INTERACTION_TYPE].value_counts().items()},
            "categories": int(self.items[C.CATEGORY].nunique()),
            "first_timestamp": ts.min().isoformat() if n else None,
            "last_timestamp": ts.max().isoformat() if n else None,
            "sessions": int(inter[C.SESSION_ID].nunique()) if C.SESSION_ID in inter else 0,
        }


def positive_mask(interactions: pd.DataFrame) -> pd.Series:
    """Positive signal (ARCHITECTURE §3): purchase/like, or a rating >= 4."""
    is_type = interactions[C.INTERACTION_TYPE].isin(C.POSITIVE_TYPES)
    if C.RATING in interactions:
        is_type = is_type | (interactions[C.RATING].fillna(-1.0) >= C.POSITIVE_RATING)
    return is_type


def _require_columns(df: pd.DataFrame, required: Iterable[str], table: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{table}: missing required column(s) {', '.join(missing)} (have: {', '.join(map(str, df.columns))})")


def _require_no_nulls(df: pd.DataFrame, cols: Iterable[str], table: str) -> None:
    for col in cols:
        n_null = int(df[col].isna().sum())
        if n_null:
            raise DataError(f"{table}.{col}: {n_null} null value(s) in a required column")


def _as_id(series: pd.Series) -> pd.Series:
    """Ids are strings everywhere; floats like 12.0 (from CSV with NaNs) become '12'."""
    if pd.api.types.is_float_dtype(series):
        whole = series.dropna()
        if (whole == np.floor(whole)).all():
            return series.map(lambda v: None if pd.isna(v) else str(int(v))).astype("string").astype(object)
    return series.astype("string").astype(object)


def to_utc(series: pd.Series, name: str) -> pd.Series:
    """Epoch seconds or ISO-8601 strings/datetimes -> tz-aware UTC timestamps; bad values name the column."""
    if pd.api.types.is_datetime64_any_dtype(series):
        out = series
    elif pd.api.types.is_numeric_dtype(series):
        out = pd.to_datetime(series, unit="s", utc=True, errors="coerce")
        bad = out.isna() & series.notna()
        if bad.any():
            raise DataError(f"{name}: {int(bad.sum())} value(s) are not valid epoch seconds (e.g. {series[bad].iloc[0]!r})")
    else:
        out = pd.to_datetime(series, utc=True, errors="coerce", format="mixed")
        bad = out.isna() & series.notna()
        if bad.any():
            raise DataError(f"{name}: {int(bad.sum())} value(s) are not timestamps (e.g. {series[bad].iloc[0]!r})")
    if getattr(out.dt, "tz", None) is None:
        out = out.dt.tz_localize("UTC")
    else:
        out = out.dt.tz_convert("UTC")
    return out.astype("datetime64[ns, UTC]")


def _as_float(df: pd.DataFrame, col: str, table: str) -> pd.Series:
    try:
        return pd.to_numeric(df[col], errors="raise").astype("float64")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{table}.{col}: not numeric ({exc})") from None


def _as_tag_list(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.replace(",", "|").split("|") if t.strip()]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(t) for t in value]
    raise DataError(f"items.tags: unsupported value {value!r} (use a list or a '|'-separated string)")


def canonical_interactions(df: pd.DataFrame, *, assign_missing_sessions: bool = True) -> pd.DataFrame:
    """Validate and coerce an interactions table to the canonical dtypes."""
    table = "interactions"
    _require_columns(df, C.REQUIRED_INTERACTION_COLUMNS, table)
    _require_no_nulls(df, C.REQUIRED_INTERACTION_COLUMNS, table)
    out = df.copy()
    out[C.USER_ID] = _as_id(out[C.USER_ID])
    out[C.ITEM_ID] = _as_id(out[C.ITEM_ID])
    out[C.TIMESTAMP] = to_utc(out[C.TIMESTAMP], f"{table}.{C.TIMESTAMP}")
    types = out[C.INTERACTION_TYPE].astype(str)
    unknown = sorted(set(types.unique()) - set(C.INTERACTION_TYPES))
    if unknown:
        raise DataError(
            f"{table}.{C.INTERACTION_TYPE}: unknown type(s) {', '.join(unknown[:5])} "
            f"(allowed: {', '.join(C.INTERACTION_TYPES)})"
        )
    out[C.INTERACTION_TYPE] = types
    if C.RATING in out:
        out[C.RATING] = _as_float(out, C.RATING, table)
        bad = out[C.RATING].notna() & ~out[C.RATING].between(0.0, 5.0)
        if bad.any():
            raise DataError(f"{table}.{C.RATING}: {int(bad.sum())} value(s) outside 0..5 (e.g. {out.loc[bad, C.RATING].iloc[0]})")
        missing = (out[C.INTERACTION_TYPE] == "rating") & out[C.RATING].isna()
        if missing.any():
            raise DataError(f"{table}.{C.RATING}: {int(missing.sum())} 'rating' interaction(s) without a rating value")
    else:
        if (out[C.INTERACTION_TYPE] == "rating").any():
            raise DataError(f"{table}: 'rating' interactions need a {C.RATING} column")
        out[C.RATING] = np.nan
    if C.DURATION in out:
        out[C.DURATION] = _as_float(out, C.DURATION, table)
        if (out[C.DURATION] < 0).any():
            raise DataError(f"{table}.{C.DURATION}: negative duration(s)")
    if C.CHANNEL in out:
        out[C.CHANNEL] = out[C.CHANNEL].fillna("web").astype(str)
        bad = sorted(set(out[C.CHANNEL].unique()) - set(C.CHANNELS))
        if bad:
            raise DataError(f"{table}.{C.CHANNEL}: unknown channel(s) {', '.join(bad[:5])} (allowed: {', '.join(C.CHANNELS)})")
    else:
        out[C.CHANNEL] = "web"
    out[C.DEVICE_TYPE] = out[C.DEVICE_TYPE].fillna("unknown").astype(str) if C.DEVICE_TYPE in out else "unknown"
    if C.INTERACTION_ID in out:
        out[C.INTERACTION_ID] = _as_id(out[C.INTERACTION_ID])
        dup = out[C.INTERACTION_ID].duplicated()
        if dup.any():
            raise DataError(
                f"{table}.{C.INTERACTION_ID}: {int(dup.sum())} duplicate id(s) (e.g. {out.loc[dup, C.INTERACTION_ID].iloc[0]!r})"
            )
    else:
        out[C.INTERACTION_ID] = (
            out[C.USER_ID] + ":" + out[C.ITEM_ID] + ":" + out[C.TIMESTAMP].astype("int64").astype(str)
            + ":" + out[C.INTERACTION_TYPE]
        )
        if out[C.INTERACTION_ID].duplicated().any():
            out[C.INTERACTION_ID] = out[C.INTERACTION_ID] + ":" + out.groupby(C.INTERACTION_ID).cumcount().astype(str)
    if C.SESSION_ID not in out or out[C.SESSION_ID].isna().all():
        if assign_missing_sessions:
            out[C.SESSION_ID] = assign_sessions(out)
    else:
        out[C.SESSION_ID] = out[C.SESSION_ID].astype(str)
    ordered = [c for c in (*C.REQUIRED_INTERACTION_COLUMNS, *C.OPTIONAL_INTERACTION_COLUMNS) if c in out]
    extra = [c for c in out.columns if c not in ordered]
    return out[ordered + extra].reset_index(drop=True)


def assign_sessions(interactions: pd.DataFrame, gap_seconds: int = C.SESSION_GAP_SECONDS) -> pd.Series:
    """Session ids from a per-user inactivity gap, vectorised; returned aligned to the input index."""
    order = interactions.sort_values([C.USER_ID, C.TIMESTAMP], kind="stable")
    ts = order[C.TIMESTAMP].astype("int64") // 1_000_000_000
    users = order[C.USER_ID]
    new_user = users.ne(users.shift())
    new_session = new_user | ts.diff().gt(gap_seconds)
    number = new_session.groupby(users.values).cumsum()
    sessions = users.astype(str) + "-s" + number.astype(str)
    return sessions.reindex(interactions.index)


def canonical_items(df: pd.DataFrame) -> pd.DataFrame:
    """Validate and coerce an items table."""
    table = "items"
    _require_columns(df, C.REQUIRED_ITEM_COLUMNS, table)
    _require_no_nulls(df, (C.ITEM_ID,), table)
    out = df.copy()
    out[C.ITEM_ID] = _as_id(out[C.ITEM_ID])
    dup = out[C.ITEM_ID].duplicated()
    if dup.any():
        raise DataError(f"{table}.{C.ITEM_ID}: {int(dup.sum())} duplicate id(s) (e.g. {out.loc[dup, C.ITEM_ID].iloc[0]!r})")
    out[C.TITLE] = out[C.TITLE].fillna("").astype(str)
    out[C.CATEGORY] = out[C.CATEGORY].fillna("unknown").astype(str)
    for col in (C.SUBCATEGORY, C.BRAND, C.DESCRIPTION):
        out[col] = out[col].fillna("").astype(str) if col in out else ""
    if C.PRICE in out:
        out[C.PRICE] = _as_float(out, C.PRICE, table)
        if (out[C.PRICE] < 0).any():
            raise DataError(f"{table}.{C.PRICE}: {int((out[C.PRICE] < 0).sum())} negative price(s)")
    else:
        out[C.PRICE] = np.nan
    out[C.TAGS] = out[C.TAGS].map(_as_tag_list) if C.TAGS in out else [[] for _ in range(len(out))]
    if C.CREATED_DATE in out:
        out[C.CREATED_DATE] = to_utc(out[C.CREATED_DATE], f"{table}.{C.CREATED_DATE}")
    else:
        # a bare pd.NaT column is tz-naive and cannot be cast to UTC with astype
        out[C.CREATED_DATE] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    ordered = [c for c in (*C.REQUIRED_ITEM_COLUMNS, *C.OPTIONAL_ITEM_COLUMNS) if c in out]
    return out[ordered + [c for c in out.columns if c not in ordered]].reset_index(drop=True)


def canonical_users(df: pd.DataFrame | None, interactions: pd.DataFrame) -> pd.DataFrame:
    """Validate a users table, or derive one from interactions (registration = first event)."""
    first_seen = interactions.groupby(C.USER_ID)[C.TIMESTAMP].min()
    if df is None:
        out = pd.DataFrame({C.USER_ID: first_seen.index.astype(object), C.REGISTRATION_DATE: first_seen.values})
    else:
        table = "users"
        _require_columns(df, C.REQUIRED_USER_COLUMNS, table)
        _require_no_nulls(df, (C.USER_ID,), table)
        out = df.copy()
        out[C.USER_ID] = _as_id(out[C.USER_ID])
        dup = out[C.USER_ID].duplicated()
        if dup.any():
            raise DataError(f"{table}.{C.USER_ID}: {int(dup.sum())} duplicate id(s) (e.g. {out.loc[dup, C.USER_ID].iloc[0]!r})")
        if C.REGISTRATION_DATE in out:
            out[C.REGISTRATION_DATE] = to_utc(out[C.REGISTRATION_DATE], f"{table}.{C.REGISTRATION_DATE}")
        else:
            out[C.REGISTRATION_DATE] = out[C.USER_ID].map(first_seen)
    out[C.REGISTRATION_DATE] = pd.to_datetime(out[C.REGISTRATION_DATE], utc=True).astype("datetime64[ns, UTC]")
    for col in (C.AGE_GROUP, C.GENDER, C.LOCATION, C.SUBSCRIPTION_TIER):
        out[col] = out[col].fillna("unknown").astype(str) if col in out else "unknown"
    return out.reset_index(drop=True)


def canonicalize(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame | None = None,
    *,
    source: str = "unknown",
    check_references: bool = True,
) -> CanonicalData:
    """Coerce all three tables; optionally require every interaction to name a known user and item."""
    inter = canonical_interactions(interactions)
    items_c = canonical_items(items)
    users_c = canonical_users(users, inter)
    if check_references:
        orphan_items = ~inter[C.ITEM_ID].isin(items_c[C.ITEM_ID])
        if orphan_items.any():
            raise DataError(
                f"interactions.{C.ITEM_ID}: {int(orphan_items.sum())} interaction(s) name unknown items "
                f"(e.g. {inter.loc[orphan_items, C.ITEM_ID].iloc[0]!r})"
            )
        if users is not None:
            orphan_users = ~inter[C.USER_ID].isin(users_c[C.USER_ID])
            if orphan_users.any():
                raise DataError(
                    f"interactions.{C.USER_ID}: {int(orphan_users.sum())} interaction(s) name unknown users "
                    f"(e.g. {inter.loc[orphan_users, C.USER_ID].iloc[0]!r})"
                )
    return CanonicalData(interactions=inter, items=items_c, users=users_c, source=source)
