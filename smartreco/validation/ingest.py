"""The ingest step's library side: source (+ the served traffic's event log) -> folder of parquet tables
(raw for folders, so that validation, not the loader, reports bad rows).

The loop that keeps learning starts here: when ``events`` names the event log the graph writes (a segment
folder or the shared ``redis://`` stream, with its parquet archive), what users did with served answers
(clicks, likes, purchases: :func:`~smartreco.feedback.dataset.read_interactions`) is appended to the
source's interactions, so the next training run learns from the traffic. Impressions stay out: they are
what was shown, not what a user did (the drift pipeline reads them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.validation.result import load_raw


def ingest_tables(
    source: str, out: Path, *, sample_users: int = 0, seed: int = 7, events: str = ""
) -> dict[str, int]:
    """Write the tables; returns rows per table, and ``served_interactions`` when ``events`` is read."""
    tables = load_raw(source)
    served = 0
    if events:
        tables, served = with_served_interactions(tables, events)
    if sample_users > 0:
        tables = _sample(tables, sample_users, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    counts = {name: len(df) for name, df in tables.items()}
    if events:
        counts["served_interactions"] = served
    return counts


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
