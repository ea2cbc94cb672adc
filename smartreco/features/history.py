"""A user's recent-history list (most recent first) after each (user, timestamp), vectorised.

The lists are gathered with one (rows x N) index matrix and assembled as an Arrow list array from
flat values and offsets, so there is no Python loop over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from smartreco.data import columns as C
from smartreco.features._frame import EVENT_TIMESTAMP, entity_codes, epoch_seconds, last_per_time

HISTORY_LENGTH = 20
RECENT_ITEMS = "recent_items"
HISTORY_LAST_TS = "history_last_ts"
HISTORY_FEATURES: tuple[str, ...] = (RECENT_ITEMS, "history_length", HISTORY_LAST_TS)


def recent_history(interactions: pd.DataFrame, n: int = HISTORY_LENGTH) -> pd.DataFrame:
    """Per (user, timestamp): the last ``n`` item ids up to and including that time, newest first."""
    df = interactions[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]].sort_values([C.USER_ID, C.TIMESTAMP], kind="stable")
    df = df.reset_index(drop=True)
    codes = entity_codes(df[C.USER_ID])
    pos = np.arange(len(df))
    start = pd.Series(pos).groupby(codes).transform("first").to_numpy()
    keep = ~df.duplicated([C.USER_ID, C.TIMESTAMP], keep="last").to_numpy()
    rows = pos[keep]
    idx = rows[:, None] - np.arange(n)[None, :]
    valid = idx >= start[rows][:, None]
    lengths = valid.sum(axis=1)
    items = df[C.ITEM_ID].astype(str).to_numpy()
    flat = items[idx[valid]]  # row-major: each row's items newest first, contiguous
    offsets = np.r_[0, np.cumsum(lengths)].astype("int32")
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.string()))
    out = df.loc[keep, [C.USER_ID, C.TIMESTAMP]].copy()
    out[RECENT_ITEMS] = lists.to_pandas().to_numpy()  # numpy arrays per row, no Python row loop
    out["history_length"] = lengths.astype("int64")
    out[HISTORY_LAST_TS] = epoch_seconds(out[C.TIMESTAMP]).to_numpy()
    out = last_per_time(out, C.USER_ID)
    return out[[C.USER_ID, EVENT_TIMESTAMP, *HISTORY_FEATURES]].reset_index(drop=True)
