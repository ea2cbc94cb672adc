"""Per-item event statistics of the hybrid's item side: ONE builder for the small and the 10M path.

The hybrid (:func:`smartreco.models.hybrid.item_side`, pandas frames in memory) and the 10M-item bundle
(:mod:`smartreco.serving.build`, interaction batches streamed from parquet shards) both call
:func:`item_event_stats`, with the constants of :mod:`smartreco.models.hybrid_features` (popularity
windows, hour buckets) and :data:`DEVICE_VOCAB_MAX`, so the ranker sees the same features for the same
data whichever path built the bundle (train/serve skew otherwise). Accumulated with ``np.bincount`` per
batch: memory is O(n_items), never O(events).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartreco.data import columns as C
from smartreco.models.hybrid_features import HOUR_BUCKETS, POP_LONG_DAYS, POP_SHORT_DAYS, SECONDS_PER_DAY

#: device types kept as context features (the most frequent ones); the rest count for no device
DEVICE_VOCAB_MAX = 16
#: the columns :func:`item_event_stats` reads from each batch (any may be missing but the timestamp)
EVENT_COLUMNS = (C.TIMESTAMP, C.CHANNEL, C.DEVICE_TYPE, C.RATING)


def device_vocabulary(values: Iterable[object]) -> list[str]:
    """The :data:`DEVICE_VOCAB_MAX` most frequent device types, most frequent first (ties by name)."""
    counts = pd.Series([str(v) for v in values if v is not None and v == v], dtype=object).value_counts()
    frame = pd.DataFrame({"name": counts.index.astype(str), "n": counts.to_numpy()})
    frame = frame.sort_values(["n", "name"], ascending=[False, True], kind="stable")
    return frame["name"].head(DEVICE_VOCAB_MAX).tolist()


def epoch_seconds(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """int64 seconds since the epoch of a timestamp column, whatever its unit (s/ms/us/ns)."""
    scale = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
    unit = column.type.unit if pa.types.is_timestamp(column.type) else "ns"
    return np.asarray(pc.cast(column, pa.int64()), dtype=np.int64) // scale[unit]


def frame_batches(interactions: pd.DataFrame, item_rows: np.ndarray) -> Iterator[tuple[np.ndarray, pa.RecordBatch]]:
    """One in-memory frame as the ``(item rows, batch)`` stream :func:`item_event_stats` reads (rows < 0 dropped)."""
    ok = np.asarray(item_rows) >= 0
    cols = [c for c in EVENT_COLUMNS if c in interactions]
    batch = pa.RecordBatch.from_pandas(interactions.loc[ok, cols], preserve_index=False)
    yield np.asarray(item_rows)[ok].astype(np.int64), batch


def item_event_stats(batches: Iterable[tuple[np.ndarray, pa.RecordBatch]], n_items: int, cutoff_s: float,
                     channel_vocab: Sequence[str], device_vocab: Sequence[str], hour_buckets: int = HOUR_BUCKETS,
                     short_days: float = POP_SHORT_DAYS, long_days: float = POP_LONG_DAYS) -> dict[str, np.ndarray]:
    """Per-item arrays of :class:`~smartreco.models.hybrid_features.ItemSide` plus the popularity windows
    (events in ``[cutoff - days, cutoff)``) from ``(item rows, batch)`` pairs: ``item_count``,
    ``item_mean_rating`` (nan without ratings), ``ctx_channel`` / ``ctx_device`` / ``ctx_hour`` shares of
    the item's events, ``pop_short`` / ``pop_long``."""
    channel_vocab, device_vocab = list(channel_vocab), list(device_vocab)
    count = np.zeros(n_items, np.float64)
    short = np.zeros(n_items, np.float64)
    long_ = np.zeros(n_items, np.float64)
    rsum = np.zeros(n_items, np.float64)
    rcnt = np.zeros(n_items, np.float64)
    ch = np.zeros((n_items, max(len(channel_vocab), 1)), np.float64)
    dv = np.zeros((n_items, max(len(device_vocab), 1)), np.float64)
    hr = np.zeros((n_items, hour_buckets), np.float64)

    def add_shares(table: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> None:
        ok = codes >= 0
        width = table.shape[1]
        table += np.bincount(rows[ok] * width + codes[ok], minlength=n_items * width).reshape(n_items, width)

    for rows, batch in batches:
        rows = np.asarray(rows, dtype=np.int64)
        ts = epoch_seconds(batch.column(batch.schema.get_field_index(C.TIMESTAMP)))
        count += np.bincount(rows, minlength=n_items)
        before = ts < cutoff_s
        short += np.bincount(rows[before & (ts >= cutoff_s - short_days * SECONDS_PER_DAY)], minlength=n_items)
        long_ += np.bincount(rows[before & (ts >= cutoff_s - long_days * SECONDS_PER_DAY)], minlength=n_items)
        names = batch.schema.names
        if C.RATING in names:
            r = np.asarray(pc.fill_null(pc.cast(batch.column(names.index(C.RATING)), pa.float64()), np.nan),
                           dtype=np.float64)
            has = ~np.isnan(r)
            rsum += np.bincount(rows[has], weights=r[has], minlength=n_items)
            rcnt += np.bincount(rows[has], minlength=n_items)
        for table, col, vocab in ((ch, C.CHANNEL, channel_vocab), (dv, C.DEVICE_TYPE, device_vocab)):
            if col in names and vocab:
                values = pc.cast(batch.column(names.index(col)), pa.string())
                codes = np.asarray(pc.fill_null(pc.index_in(values, pa.array(vocab, pa.string())), -1), np.int64)
                add_shares(table, rows, codes)
        hours = (ts % SECONDS_PER_DAY) // 3600
        add_shares(hr, rows, (hours * hour_buckets // 24).astype(np.int64))
    denom = np.maximum(count, 1.0)[:, None]
    return {
        "item_count": count.astype(np.float32),
        "pop_short": short.astype(np.float32),
        "pop_long": long_.astype(np.float32),
        "item_mean_rating": np.where(rcnt > 0, rsum / np.maximum(rcnt, 1), np.nan).astype(np.float32),
        "ctx_channel": (ch / denom).astype(np.float32),
        "ctx_device": (dv / denom).astype(np.float32),
        "ctx_hour": (hr / denom).astype(np.float32),
    }
