"""Shared helpers for the per-entity cumulative feature tables (one row per entity and event time).

Every feature table is a time series: a row holds an entity's state after all of its events up to
and including one timestamp, and is stamped ``timestamp + 1 µs``. A point-in-time join that takes
the latest row at or before an example's time therefore sees only events strictly before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartreco.data import columns as C

#: Feast's timestamp column in every offline feature table.
EVENT_TIMESTAMP = "event_timestamp"
#: Shift from an event to the feature row it produces (strictly-before semantics).
ROW_DELAY = pd.Timedelta(microseconds=1)


def entity_codes(series: pd.Series) -> np.ndarray:
    """Dense integer codes for a key column: groupby on ints is much faster than on object strings."""
    return pd.factorize(series, sort=False)[0]


def last_per_time(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Keep the state after the last event of each (entity, timestamp); rows must be sorted by them."""
    keep = ~df.duplicated([key, C.TIMESTAMP], keep="last")
    out = df.loc[keep].copy()
    out[EVENT_TIMESTAMP] = out[C.TIMESTAMP] + ROW_DELAY
    return out


def epoch_seconds(ts: pd.Series) -> pd.Series:
    return (ts.astype("datetime64[ns, UTC]").astype("int64") // 1_000_000_000).astype("int64")


def latest_as_of(table: pd.DataFrame, key: str, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per entity: its latest feature row at or before ``as_of`` (all rows when None)."""
    if as_of is not None:
        table = table[table[EVENT_TIMESTAMP] <= as_of]
    order = table.sort_values([key, EVENT_TIMESTAMP], kind="stable")
    return order.drop_duplicates(key, keep="last").reset_index(drop=True)


def point_in_time_join(
    entity_df: pd.DataFrame, table: pd.DataFrame, key: str, time_col: str = C.TIMESTAMP
) -> pd.DataFrame:
    """Feast-equivalent PIT join in pandas: for each entity row, the latest feature row at or before
    its time (so only events strictly before it). Used by tests and by in-memory training."""
    left = entity_df.reset_index(drop=False).sort_values(time_col, kind="stable")
    right = table.sort_values(EVENT_TIMESTAMP, kind="stable")
    right_cols = [c for c in right.columns if c != key]
    merged = pd.merge_asof(
        left,
        right[[key, *right_cols]],
        left_on=time_col,
        right_on=EVENT_TIMESTAMP,
        by=key,
        direction="backward",
        allow_exact_matches=True,
    )
    return merged.sort_values("index").drop(columns="index").reset_index(drop=True)
