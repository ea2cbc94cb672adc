"""New catalogue items servable before the next retrain: their rows, validation and the shared store.

``smartreco items add`` validates canonical item rows (:func:`validate_rows`), encodes them with the
content recipe of each bundle they are meant for (:mod:`smartreco.serving.live_encode`) and stores them
here; the graph nodes read the store (:mod:`smartreco.serving.live_ranking`) and add the items to their
content candidates and rankings. Vectors are stored per bundle version because a content space is a
bundle's own (MiniLM + TF-IDF/SVD fitted on its catalogue): an arm serves only the items encoded for the
bundle it loaded.

Two backends with the same methods, picked like the graph state (:func:`open_live_store`): a table in the
graph's SQLite file (every worker process of one pod) and Redis hashes (every replica,
``SMARTRECO_STATE=redis://...``). A version counter changes on every write, so a node re-reads the (small)
live set only when it changed.

An id is a duplicate (counted, not stored again) when the bundle already has it or it was already added
for that bundle version: adding the same file twice is a no-op.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError

#: the item fields a live item keeps (what the answer shows and the encoders read)
ROW_FIELDS: tuple[str, ...] = (*C.REQUIRED_ITEM_COLUMNS, *C.OPTIONAL_ITEM_COLUMNS)


@dataclass(frozen=True)
class LiveItem:
    """One added item for one bundle version: its canonical row and its content vector in that bundle's space."""

    item_id: str
    row: dict
    vector: np.ndarray

    @property
    def title(self) -> str:
        return str(self.row.get(C.TITLE) or self.item_id)

    @property
    def category(self) -> str:
        return str(self.row.get(C.CATEGORY) or "")

    @property
    def created_s(self) -> float:
        """Creation time in epoch seconds (nan when the row has none)."""
        value = self.row.get(C.CREATED_DATE)
        if value in (None, ""):
            return float("nan")
        ts = pd.Timestamp(value)
        return float(ts.timestamp()) if not pd.isna(ts) else float("nan")


@dataclass
class AddResult:
    """What one ``add`` did: ids stored, ids already known (bundle or live set)."""

    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ validation
def read_rows(path: str | Path) -> pd.DataFrame:
    """Item rows from a CSV/parquet file (or a dataset folder's ``items`` table)."""
    from smartreco.data.io import read_table

    p = Path(path)
    if p.is_dir():
        found = [f for f in (p / "items.parquet", p / "items.csv") if f.exists()]
        if not found:
            raise DataError(f"--source: {p} holds no items.parquet or items.csv")
        p = found[0]
    if not p.exists():
        raise DataError(f"--source: {p} does not exist")
    return read_table(p)


def validate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical item rows (the training ingest's own checks) where title and category are required too:
    a live item is found by its content, so an empty one could never be retrieved. Errors name the field."""
    from smartreco.data.canonical import canonical_items

    if len(frame) == 0:
        raise DataError("items: no rows")
    for col in (C.TITLE, C.CATEGORY):
        if col in frame:
            blank = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
            if blank.any():
                raise DataError(f"items.{col}: {int(blank.sum())} empty value(s) (row {int(blank.idxmax())})")
    return canonical_items(frame)


def row_record(row: pd.Series) -> dict:
    """A canonical row as JSON-safe values (timestamps as ISO text, tags as a list)."""
    out: dict[str, Any] = {}
    for col in ROW_FIELDS:
        if col not in row.index:
            continue
        value = row[col]
        if isinstance(value, (list, tuple, np.ndarray)):
            out[col] = [str(v) for v in value]
        elif isinstance(value, pd.Timestamp):
            out[col] = None if pd.isna(value) else value.isoformat()
        elif value is None or (isinstance(value, float) and np.isnan(value)):
            out[col] = None
        elif isinstance(value, (np.floating, float)):
            out[col] = float(value)
        else:
            out[col] = str(value) if not isinstance(value, (int, np.integer)) else int(value)
    return out


def rows_frame(items: Iterable[LiveItem]) -> pd.DataFrame:
    """Stored rows back as a canonical items frame (for an encoder)."""
    return pd.DataFrame([it.row for it in items])


# ------------------------------------------------------------------------------------------ encoding
def _vec_text(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()


def _vec_from(text: str | bytes) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def _doc(row: dict, vector: np.ndarray) -> str:
    return json.dumps({"row": row, "vector": _vec_text(vector), "added": time.time()}, sort_keys=True)


def _item(item_id: str, doc: str | bytes) -> LiveItem:
    data = json.loads(doc)
    return LiveItem(str(item_id), data["row"], _vec_from(data["vector"]))


# ------------------------------------------------------------------------------------------ backends
class SqliteLiveStore:
    """The live items in the graph's SQLite state file (own tables; WAL: every process of the pod)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        con = self._con()
        con.execute(
            "CREATE TABLE IF NOT EXISTS live_items (bundle_version TEXT NOT NULL, item_id TEXT NOT NULL,"
            " doc TEXT NOT NULL, PRIMARY KEY (bundle_version, item_id))"
        )
        con.execute("CREATE TABLE IF NOT EXISTS live_version (id INTEGER PRIMARY KEY CHECK (id = 0), v INTEGER)")
        con.execute("INSERT OR IGNORE INTO live_version VALUES (0, 0)")

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None or self._local.pid != os.getpid():  # never reuse a connection across a fork
            con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            self._local.con, self._local.pid = con, os.getpid()
        return con

    def add(self, bundle_version: str, items: dict[str, tuple[dict, np.ndarray]]) -> list[str]:
        """Store the items not yet stored for this version; returns the ids stored."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            added = []
            for item_id, (row, vec) in items.items():
                cur = con.execute(
                    "INSERT OR IGNORE INTO live_items VALUES (?, ?, ?)", (bundle_version, item_id, _doc(row, vec))
                )
                if cur.rowcount:
                    added.append(item_id)
            if added:
                con.execute("UPDATE live_version SET v = v + 1 WHERE id = 0")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return added

    def known(self, bundle_version: str, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        con = self._con()
        out: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = con.execute(
                f"SELECT item_id FROM live_items WHERE bundle_version = ? AND item_id IN ({marks})",
                (bundle_version, *chunk),
            )
            out.update(r[0] for r in rows)
        return out

    def items(self, bundle_version: str) -> list[LiveItem]:
        rows = self._con().execute(
            "SELECT item_id, doc FROM live_items WHERE bundle_version = ? ORDER BY item_id", (bundle_version,)
        )
        return [_item(i, d) for i, d in rows]

    def version(self) -> int:
        return int(self._con().execute("SELECT v FROM live_version WHERE id = 0").fetchone()[0])

    def expire(self, ids: Iterable[str]) -> int:
        """Forget these ids for every bundle version (a loaded bundle has them now); returns rows removed."""
        ids = list(ids)
        con = self._con()
        removed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            removed += con.execute(f"DELETE FROM live_items WHERE item_id IN ({marks})", chunk).rowcount
        if removed:
            con.execute("UPDATE live_version SET v = v + 1 WHERE id = 0")
        return removed

    def all_ids(self) -> set[str]:
        return {r[0] for r in self._con().execute("SELECT DISTINCT item_id FROM live_items")}

    def versions(self) -> list[str]:
        return [r[0] for r in self._con().execute("SELECT DISTINCT bundle_version FROM live_items ORDER BY 1")]


class RedisLiveStore:
    """The live items in Redis: hash ``<prefix>:live:<bundle version>`` (id -> JSON row + vector) and the
    counter ``<prefix>:live:v``; every replica reads the same. The timeout is the answer path's (the graph
    state's): a slow Redis costs a node at most that per refresh, then it serves its last live set."""

    def __init__(self, url: str, prefix: str = "smartreco:graph", timeout_s: float = 0.5) -> None:
        import redis

        self.prefix = prefix
        self._r = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def _key(self, bundle_version: str) -> str:
        return f"{self.prefix}:live:{bundle_version}"

    @property
    def _index(self) -> str:  # the versions that hold live items (for expire)
        return f"{self.prefix}:live-versions"

    def add(self, bundle_version: str, items: dict[str, tuple[dict, np.ndarray]]) -> list[str]:
        key = self._key(bundle_version)
        pipe = self._r.pipeline(transaction=True)
        for item_id, (row, vec) in items.items():
            pipe.hsetnx(key, item_id, _doc(row, vec))
        results = pipe.execute() if items else []
        added = [i for i, ok in zip(items, results, strict=True) if ok]
        if added:
            self._r.sadd(self._index, bundle_version)
            self._r.incr(f"{self.prefix}:live:v")
        return added

    def known(self, bundle_version: str, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        hits = self._r.hmget(self._key(bundle_version), ids)
        return {i for i, h in zip(ids, hits, strict=True) if h is not None}

    def items(self, bundle_version: str) -> list[LiveItem]:
        raw = self._r.hgetall(self._key(bundle_version))
        return sorted((_item(k.decode(), v) for k, v in raw.items()), key=lambda it: it.item_id)

    def version(self) -> int:
        return int(self._r.get(f"{self.prefix}:live:v") or 0)

    def expire(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        removed = 0
        for version in self._r.smembers(self._index):
            removed += int(self._r.hdel(self._key(version.decode()), *ids))
        if removed:
            self._r.incr(f"{self.prefix}:live:v")
        return removed

    def versions(self) -> list[str]:
        return sorted(v.decode() for v in self._r.smembers(self._index))

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        for version in self._r.smembers(self._index):
            out.update(k.decode() for k in self._r.hkeys(self._key(version.decode())))
        return out


LiveStore = SqliteLiveStore | RedisLiveStore


def state_spec() -> str:
    """Where the graph's state is (``SMARTRECO_STATE`` when set, else ``SMARTRECO_GRAPH_STATE``): the nodes'
    :func:`inference_graph.graph_io.node_state` resolves it the same way."""
    from smartreco import settings

    return str(settings.STATE.get() or settings.GRAPH_STATE.get())


def open_live_store(spec: str | Path | None = None) -> LiveStore:
    """The live store of a state spec: a ``redis://`` URL (shared by replicas) or a SQLite file path."""
    text = str(spec or state_spec())
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisLiveStore(text)
    return SqliteLiveStore(text)


def live_rows(store: LiveStore) -> pd.DataFrame:
    """Every added item's row once (whichever bundle version it was encoded for): what the next retrain's
    ingest appends to the catalogue."""
    rows: dict[str, dict] = {}
    for version in store.versions():
        for it in store.items(version):
            rows.setdefault(it.item_id, it.row)
    return pd.DataFrame(list(rows.values()), columns=list(ROW_FIELDS)) if rows else pd.DataFrame(columns=ROW_FIELDS)


def add_items(
    store: LiveStore,
    bundle_version: str,
    rows: pd.DataFrame,
    vectors: np.ndarray,
    in_bundle: set[str],
) -> AddResult:
    """Store validated rows with their vectors for one bundle version; ids in the bundle or already stored
    for that version are duplicates (idempotent)."""
    ids = rows[C.ITEM_ID].astype(str).tolist()
    if len(vectors) != len(ids):
        raise DataError(f"live items: {len(vectors)} vectors for {len(ids)} rows")
    if not np.isfinite(vectors).all():
        raise DataError("live items: the encoder returned non-finite vector values")
    result = AddResult(duplicates=[i for i in ids if i in in_bundle])
    fresh = {
        i: (row_record(row), vectors[k])
        for k, (i, (_, row)) in enumerate(zip(ids, rows.iterrows(), strict=True))
        if i not in in_bundle
    }
    stored = set(store.add(bundle_version, fresh))
    result.added = [i for i in fresh if i in stored]
    result.duplicates += [i for i in fresh if i not in stored]
    return result
