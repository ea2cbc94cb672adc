"""Chunked item popularity and user statistics over partitioned parquet (50M+ interactions, flat memory).

Why not the point-in-time builders in :mod:`smartreco.features.item` / ``user``: they keep one row per
(entity, event time) and sort the whole table, which does not compose chunk by chunk. At scale the
serving side needs the *current* aggregates (popularity for retrieval and negative sampling, user
activity), which are sums, minima and maxima, so each shard is reduced with ``np.bincount`` into
dense per-row arrays (ids -> rows through the items/users tables) and the shards add up exactly.

Time decay uses a fixed anchor: ``sum w * 2^((t - anchor) / half_life)`` is additive across chunks
and is rescaled once to the last event time at the end (the same value as decaying every event to
that time). Memory: O(items + users) arrays + one parquet row group batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask
from smartreco.errors import DataError

ITEM_STATS = "item_stats.parquet"
USER_STATS = "user_stats.parquet"
NS_PER_DAY = 86_400 * 10**9
#: rows per batch read from a shard
BATCH_ROWS = 1_000_000
_READ_COLUMNS = (C.USER_ID, C.ITEM_ID, C.INTERACTION_TYPE, C.TIMESTAMP, C.RATING)


def parquet_parts(path: Path | str) -> list[Path]:
    """The ``.parquet`` files of a table folder (sorted), or the file itself."""
    p = Path(path)
    if p.is_file():
        return [p]
    parts = sorted(p.glob("*.parquet"))
    if not parts:
        raise DataError(f"{p}: no .parquet files found")
    return parts


def iter_batches(parts: Sequence[Path], columns: Sequence[str], batch_rows: int = BATCH_ROWS,
                 progress: bool = False, desc: str = "shards") -> Iterator[pa.RecordBatch]:
    """Record batches of the given columns over all parts (a clear error for a missing column)."""
    bar = tqdm(parts, desc=desc, unit="part", disable=not progress)
    for part in bar:
        f = pq.ParquetFile(part)
        names = set(f.schema_arrow.names)
        missing = [c for c in columns if c not in names and c != C.RATING]
        if missing:
            raise DataError(f"{part}: missing column(s) {', '.join(missing)}")
        cols = [c for c in columns if c in names]
        yield from f.iter_batches(batch_size=batch_rows, columns=cols)


def id_index(table: Path | str, column: str) -> pd.Index:
    """Row order of an entity table's id column (items or users), read column-only."""
    ids = pa.concat_arrays([b.column(0).cast(pa.string()) for b in
                            iter_batches(parquet_parts(table), [column])])
    index = pd.Index(ids.to_numpy(zero_copy_only=False), dtype=object)
    if not index.is_unique:
        raise DataError(f"{table}.{column}: ids are not unique")
    return index


def rows_of(index: pd.Index, ids: pa.Array, what: str, strict: bool = True) -> np.ndarray:
    """Row numbers of ``ids`` in ``index`` (int64); unknown ids raise (``strict``) or give -1."""
    rows = index.get_indexer(ids.cast(pa.string()).to_numpy(zero_copy_only=False))
    if strict and (rows < 0).any():
        bad = ids[int(np.flatnonzero(rows < 0)[0])]
        raise DataError(f"interactions.{what}: {bad} is not in the {what.split('_')[0]}s table")
    return rows


def type_weights(types: pa.Array) -> np.ndarray:
    """Implicit strength per event from :data:`C.INTERACTION_WEIGHTS` (unknown types weigh 0)."""
    enc = pc.dictionary_encode(types).combine_chunks() if isinstance(types, pa.ChunkedArray) else \
        pc.dictionary_encode(types)
    lut = np.asarray([C.INTERACTION_WEIGHTS.get(str(t), 0.0) for t in enc.dictionary.to_pylist()], np.float64)
    return lut[enc.indices.to_numpy(zero_copy_only=False)]


@dataclass
class _Acc:
    """Per-row running sums / minima / maxima for one entity kind."""

    n: int

    def __post_init__(self) -> None:
        self.count = np.zeros(self.n, np.int64)
        self.weight = np.zeros(self.n, np.float64)
        self.positives = np.zeros(self.n, np.int64)
        self.rating_count = np.zeros(self.n, np.int64)
        self.rating_sum = np.zeros(self.n, np.float64)
        self.decayed = np.zeros(self.n, np.float64)
        self.first_ns = np.full(self.n, np.iinfo(np.int64).max, np.int64)
        self.last_ns = np.full(self.n, np.iinfo(np.int64).min, np.int64)

    def add(self, rows, w, pos, rating, ts, decay) -> None:
        n = self.n
        self.count += np.bincount(rows, minlength=n)
        self.weight += np.bincount(rows, weights=w, minlength=n)
        self.positives += np.bincount(rows, weights=pos, minlength=n).astype(np.int64)
        rated = ~np.isnan(rating)
        self.rating_count += np.bincount(rows[rated], minlength=n)
        self.rating_sum += np.bincount(rows[rated], weights=rating[rated], minlength=n)
        self.decayed += np.bincount(rows, weights=w * decay, minlength=n)
        np.minimum.at(self.first_ns, rows, ts)
        np.maximum.at(self.last_ns, rows, ts)

    def frame(self, ids: pd.Index, id_col: str, scale: float) -> pd.DataFrame:
        seen = self.count > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(self.rating_count > 0, self.rating_sum / np.maximum(self.rating_count, 1), np.nan)
        return pd.DataFrame({
            id_col: ids.to_numpy(),
            "interaction_count": self.count,
            "weighted_count": self.weight,
            "positive_count": self.positives,
            "rating_count": self.rating_count,
            "avg_rating": avg,
            "popularity_decayed": self.decayed * scale,
            "first_interaction_ts": pd.to_datetime(np.where(seen, self.first_ns, np.iinfo(np.int64).min), utc=True),
            "last_interaction_ts": pd.to_datetime(np.where(seen, self.last_ns, np.iinfo(np.int64).min), utc=True),
        })


def streaming_stats(
    data_dir: Path | str,
    out_dir: Path | str | None = None,
    *,
    half_life_days: float = 30.0,
    batch_rows: int = BATCH_ROWS,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Item and user aggregates over ``data_dir/{interactions,items,users}`` in one chunked pass.

    Returns ``(item_stats, user_stats)`` in the items/users tables' row order (so arrays line up
    with the CF vocabulary) and writes them to ``out_dir`` as parquet when given. Item columns:
    interaction_count, weighted_count, positive_count, rating_count, avg_rating,
    popularity_decayed (half-life ``half_life_days``, as of the last event), first/last
    interaction time; users get the same columns.
    """
    root = Path(data_dir)
    items = id_index(root / "items", C.ITEM_ID)
    users = id_index(root / "users", C.USER_ID)
    acc_i, acc_u = _Acc(len(items)), _Acc(len(users))
    anchor: int | None = None
    t_max = np.iinfo(np.int64).min
    hl_ns = half_life_days * NS_PER_DAY
    for batch in iter_batches(parquet_parts(root / "interactions"), _READ_COLUMNS, batch_rows, progress,
                              desc="feature shards"):
        tbl = pa.Table.from_batches([batch])
        ts = tbl.column(C.TIMESTAMP).combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
        if anchor is None:
            anchor = int(ts.min())
        t_max = max(t_max, int(ts.max()))
        types = tbl.column(C.INTERACTION_TYPE).combine_chunks()
        small = pd.DataFrame({C.INTERACTION_TYPE: types.to_pandas()})
        rating = (tbl.column(C.RATING).combine_chunks().to_numpy(zero_copy_only=False).astype(np.float64)
                  if C.RATING in tbl.column_names else np.full(len(ts), np.nan))
        small[C.RATING] = rating
        pos = positive_mask(small).to_numpy().astype(np.float64)
        w = type_weights(types)
        decay = np.exp2((ts - anchor) / hl_ns)
        acc_i.add(rows_of(items, tbl.column(C.ITEM_ID).combine_chunks(), C.ITEM_ID), w, pos, rating, ts, decay)
        acc_u.add(rows_of(users, tbl.column(C.USER_ID).combine_chunks(), C.USER_ID), w, pos, rating, ts, decay)
    if anchor is None:
        raise DataError(f"{root / 'interactions'}: no interactions")
    scale = float(np.exp2((anchor - t_max) / hl_ns))
    item_stats = acc_i.frame(items, C.ITEM_ID, scale)
    user_stats = acc_u.frame(users, C.USER_ID, scale)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        item_stats.to_parquet(out / ITEM_STATS, index=False)
        user_stats.to_parquet(out / USER_STATS, index=False)
    return item_stats, user_stats
