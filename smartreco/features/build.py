"""Build every offline feature table from canonical data and write them as parquet for Feast.

Tables (all keyed by entity + ``event_timestamp``, point-in-time correct, see ``_frame``):
``user_stats``, ``item_stats``, ``user_history`` and ``item_embeddings`` (384-d MiniLM vectors,
content-hash cached by :func:`smartreco.features.embeddings.encode_items`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData
from smartreco.features._frame import EVENT_TIMESTAMP
from smartreco.features.history import HISTORY_LENGTH, recent_history
from smartreco.features.item import item_feature_history
from smartreco.features.user import user_feature_history

USER_STATS, ITEM_STATS, USER_HISTORY, ITEM_EMBEDDINGS = "user_stats", "item_stats", "user_history", "item_embeddings"
TABLES: tuple[str, ...] = (USER_STATS, ITEM_STATS, USER_HISTORY, ITEM_EMBEDDINGS)
EMBEDDING = "embedding"
#: Item text is known from the start: embedding rows are valid at any time after this.
STATIC_TIMESTAMP = pd.Timestamp("1970-01-02", tz="UTC")

Encoder = Callable[..., np.ndarray]


@dataclass
class FeatureBuild:
    """Where the tables were written, their row counts and how long each took."""

    out_dir: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def path(self, table: str) -> Path:
        return self.out_dir / f"{table}.parquet"

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "rows": self.rows, "seconds": self.seconds}


def hash_encode(items: pd.DataFrame, cache_dir: Path | None = None) -> np.ndarray:
    """Stand-in encoder for smoke runs and tests (``encoder="hash"``): a unit vector seeded by the item
    text's hash. Same shape and contract as MiniLM, no semantics; never use it for real recommendations."""
    from smartreco.features.embeddings import item_texts, text_hashes

    hashes = text_hashes(item_texts(items).tolist())
    seeds = np.array([int(str(h)[:15], 16) for h in hashes], dtype=np.int64)  # loop over items, not events
    vecs = np.stack([np.random.default_rng(s).standard_normal(384) for s in seeds]).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def item_embedding_table(
    items: pd.DataFrame, cache_dir: Path | None = None, encode: Encoder | None = None
) -> pd.DataFrame:
    """item_id, event_timestamp, embedding (list of 384 float32)."""
    if encode is None:
        from smartreco.features.embeddings import encode_items as encode
    vectors = np.asarray(encode(items, cache_dir=cache_dir), dtype=np.float32)
    return pd.DataFrame(
        {
            C.ITEM_ID: items[C.ITEM_ID].astype(str).to_numpy(),
            EVENT_TIMESTAMP: STATIC_TIMESTAMP,
            EMBEDDING: list(vectors),
        }
    )


def build_feature_tables(
    data: CanonicalData,
    *,
    half_life_days: float = 30.0,
    history_length: int = HISTORY_LENGTH,
    embeddings: bool = True,
    cache_dir: Path | None = None,
    encode: Encoder | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """All feature tables in memory, plus the seconds each took."""
    tables: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}
    steps: list[tuple[str, Callable[[], pd.DataFrame]]] = [
        (USER_STATS, lambda: user_feature_history(data.interactions, data.items)),
        (ITEM_STATS, lambda: item_feature_history(data.interactions, data.items, half_life_days)),
        (USER_HISTORY, lambda: recent_history(data.interactions, history_length)),
    ]
    if embeddings:
        steps.append((ITEM_EMBEDDINGS, lambda: item_embedding_table(data.items, cache_dir, encode)))
    for name, make in steps:
        t0 = time.perf_counter()
        tables[name] = make()
        seconds[name] = round(time.perf_counter() - t0, 3)
    return tables, seconds


def build_features(data: CanonicalData, out_dir: Path | str, **kwargs) -> FeatureBuild:
    """Build and write ``<out_dir>/<table>.parquet`` (+ ``manifest.json``) for the Feast repo."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables, seconds = build_feature_tables(data, **kwargs)
    result = FeatureBuild(out_dir=out_dir.resolve(), seconds=seconds)
    for name, df in tables.items():
        # Feast maps list<item: T> only; pyarrow now writes "element" by default
        df.to_parquet(result.path(name), index=False, use_compliant_nested_type=False)
        result.rows[name] = len(df)
    (out_dir / "manifest.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
