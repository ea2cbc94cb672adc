"""The ingest step's library side: source (+ the served traffic's event log) -> folder of parquet tables
(raw for folders, so that validation, not the loader, reports bad rows).

The loop that keeps learning starts here: when ``events`` names the event log the graph writes (a segment
folder or the shared ``redis://`` stream, with its parquet archive), what users did with served answers
(clicks, likes, purchases: :func:`~smartreco.feedback.dataset.read_interactions`) is appended to the
source's interactions, so the next training run learns from the traffic. Impressions stay out: they are
what was shown, not what a user did (the drift pipeline reads them). Items added since the last retrain
(``smartreco items add``; the ingest component reads them from the graph state) join the source's items, so
the retrain includes them and the bundle it makes expires them from the live set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.validation.result import load_raw


def ingest_tables(
    source: str,
    out: Path,
    *,
    sample_users: int = 0,
    seed: int = 7,
    events: str = "",
    new_items: pd.DataFrame | None = None,
) -> dict[str, int]:
    """Write the tables; returns rows per table, ``served_interactions`` when ``events`` is read and
    ``new_items`` when rows added since the last retrain are given (``smartreco items add``'s live items)."""
    tables = load_raw(source)
    served = 0
    if events:
        tables, served = with_served_interactions(tables, events)
    added = None
    if new_items is not None:
        tables, added = with_new_items(tables, new_items)
    if sample_users > 0:
        tables = _sample(tables, sample_users, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    counts = {name: len(df) for name, df in tables.items()}
    if events:
        counts["served_interactions"] = served
    if added is not None:
        counts["new_items"] = added
    return counts


def with_new_items(tables: dict[str, pd.DataFrame], new_items: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], int]:
    """The source's items with the rows it does not have yet appended (the source's columns; an id it already
    has keeps the source's row): items served live since the last retrain become catalogue items."""
    items = tables.get("items")
    if items is None or new_items.empty:
        return tables, 0
    known = set(items[C.ITEM_ID].astype(str))
    rows = new_items[~new_items[C.ITEM_ID].astype(str).isin(known)].drop_duplicates(C.ITEM_ID)
    if rows.empty:
        return tables, 0
    rows = _like(rows.reindex(columns=list(items.columns)), items)
    if not pd.api.types.is_string_dtype(items[C.ITEM_ID]):  # numeric source ids: one id type in the file
        items = items.assign(**{C.ITEM_ID: items[C.ITEM_ID].astype(str)})
    out = dict(tables)
    out["items"] = pd.concat([items, rows], ignore_index=True)
    return out, len(rows)


def _like(rows: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """New rows in the source's column types (one parquet type per column): timestamps as the source's
    timestamps, tag lists as '|'-joined text where the source keeps text."""
    out = rows.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(items[col]):
            out[col] = pd.to_datetime(out[col], utc=True, errors="coerce")
            if getattr(items[col].dt, "tz", None) is None:
                out[col] = out[col].dt.tz_localize(None)
        elif pd.api.types.is_numeric_dtype(items[col]):
            out[col] = pd.to_numeric(out[col], errors="coerce")
        elif col == C.TAGS and items[col].map(lambda v: isinstance(v, str)).any():
            out[col] = out[col].map(lambda v: "|".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    return out


def with_served_interactions(tables: dict[str, pd.DataFrame], events: str) -> tuple[dict[str, pd.DataFrame], int]:
    """The source's tables with the event log's interactions appended (the columns the source's interaction
    table has; a column the log lacks stays empty). Raises :class:`DataError` when ``events`` is not a log."""
    from smartreco.feedback.dataset import read_interactions
    from smartreco.feedback.stream_log import is_redis_url

    if not is_redis_url(events) and not Path(events).is_dir():
        raise DataError(f"events: {events!r} is neither an event-log folder nor a redis:// URL")
    served = read_interactions(events)
    if served.empty:
        return tables, 0
    inter = tables["interactions"]
    rows = served.reindex(columns=list(inter.columns))
    out = dict(tables)
    out["interactions"] = pd.concat([inter, rows], ignore_index=True)
    return out, len(rows)


def _sample(tables: dict[str, pd.DataFrame], n_users: int, seed: int) -> dict[str, pd.DataFrame]:
    inter = tables["interactions"]
    users = pd.Series(inter[C.USER_ID].dropna().unique())
    if n_users >= len(users):
        return tables
    keep = set(users.sample(n=n_users, random_state=seed))
    out = dict(tables)
    out["interactions"] = inter[inter[C.USER_ID].isin(keep)].reset_index(drop=True)
    out["items"] = tables["items"][tables["items"][C.ITEM_ID].isin(out["interactions"][C.ITEM_ID])].reset_index(
        drop=True
    )
    if "users" in tables:
        out["users"] = tables["users"][tables["users"][C.USER_ID].isin(keep)].reset_index(drop=True)
    return out
