"""Numpy-only scoring math the graph nodes call at request time (imports in ``.venv-serving``: no
torch, no sklearn, no scipy).

* :func:`topk_blocked`: exact top-k of ``queries @ items.T (+ bias)`` one block of items at a time,
  so memory stays ``O(batch x block)`` however large the catalogue is (no n x n or b x n matrix).
* CF: :func:`fold_in_user` builds a vector for a user the model never saw from the items they just
  touched; :func:`cf_scores_for_history` turns that into scores.
* CB: :func:`cb_profile_from_history` is the recency-weighted mean of the history's item vectors.
* :class:`CFArtifacts` / :func:`load_item_vectors` read what the training side exported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd

#: default half-life of the recency weights, counted in interactions (the newest item weighs 1)
DEFAULT_HALF_LIFE = 10.0
#: items per block in :func:`topk_blocked`
DEFAULT_BLOCK = 65_536

# file names shared by the exporters (training side) and the loaders (serving side)
USER_FACTORS = "user_factors.npy"
ITEM_FACTORS = "item_factors.npy"
ITEM_BIAS = "item_bias.npy"
USER_IDS = "user_ids.parquet"
ITEM_IDS = "item_ids.parquet"
CF_META = "cf_meta.json"
CF_SCORER_ONNX = "cf_scorer.onnx"
ITEM_VECTORS = "item_vectors.npy"
CB_META = "cb_meta.json"
ID_COLUMN = "id"


# ---------------------------------------------------------------------------------------------- top-k


def _exclusion_pairs(exclude: Sequence[Iterable[int]] | None, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(query row, item index) pairs to mask, from one iterable of item indices per query."""
    if exclude is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(exclude) != n_queries:
        raise ValueError(f"exclude: expected one entry per query ({n_queries}), got {len(exclude)}")
    lists = [np.asarray(list(e) if not isinstance(e, np.ndarray) else e, dtype=np.int64).ravel() for e in exclude]
    rows = np.repeat(np.arange(n_queries), [len(x) for x in lists])
    cols = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    return rows, cols


def topk_blocked(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    bias: np.ndarray | None = None,
    exclude: Sequence[Iterable[int]] | None = None,
    block_size: int = DEFAULT_BLOCK,
    products: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` item indices and scores for each query row, best first.

    ``queries`` ``(b, d)``, ``items`` ``(n, d)``, optional ``bias`` ``(n,)``; ``exclude`` lists item
    indices per query that must not be returned. Items are scanned in blocks of ``block_size`` and a
    running top-k is merged, so a 10M-item catalogue never materialises a ``(b, n)`` score matrix.
    Rows with fewer than ``k`` admissible items are padded with index -1 and score -inf.

    ``products``: ``queries @ items.T`` ``(b, n)`` float32 already computed by the caller (the serving
    runtime scores a user's content profile once for both its CB candidates and the ranker's features);
    the same selection then runs on it, without a second pass over ``items``.
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    items = np.asarray(items, dtype=np.float32)
    if queries.shape[1] != items.shape[1]:
        raise ValueError(f"queries have dim {queries.shape[1]} but items have dim {items.shape[1]}")
    b, n = queries.shape[0], items.shape[0]
    if products is not None and np.shape(products) != (b, n):
        raise ValueError(f"products: expected shape {(b, n)}, got {np.shape(products)}")
    k = int(min(k, n))
    best_idx = np.full((b, k), -1, dtype=np.int64)
    best_val = np.full((b, k), -np.inf, dtype=np.float32)
    if k <= 0:
        return best_idx, best_val
    ex_rows, ex_cols = _exclusion_pairs(exclude, b)
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        if products is None:
            scores = queries @ items[start:stop].T
        else:  # a copy: the block is modified in place below
            scores = np.array(products[:, start:stop], dtype=np.float32)
        if bias is not None:
            scores += bias[start:stop]
        in_block = (ex_cols >= start) & (ex_cols < stop)
        scores[ex_rows[in_block], ex_cols[in_block] - start] = -np.inf
        kk = min(k, stop - start)
        part = (
            np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            if kk < stop - start
            else np.broadcast_to(np.arange(stop - start), (b, stop - start))
        )
        vals = np.take_along_axis(scores, part, axis=1)
        if stop - start == n:  # the only block: nothing to merge, so the running top-k (all -inf) is not sorted in
            keep = np.argsort(-vals, axis=1, kind="stable")  # the same order: the finite values first, stably
            best_val = np.take_along_axis(vals, keep, axis=1)
            best_idx = np.take_along_axis(part, keep, axis=1).astype(np.int64)
            best_val[np.isnan(best_val)] = -np.inf  # the merge would have placed the running -inf before a nan
            continue
        cand_val = np.concatenate([best_val, vals], axis=1)
        cand_idx = np.concatenate([best_idx, part + start], axis=1)
        keep = np.argsort(-cand_val, axis=1, kind="stable")[:, :k]
        best_val = np.take_along_axis(cand_val, keep, axis=1)
        best_idx = np.take_along_axis(cand_idx, keep, axis=1)
    best_idx[~np.isfinite(best_val)] = -1
    return best_idx, best_val


# ------------------------------------------------------------------------------------------ histories


def recency_weights(n: int, half_life: float = DEFAULT_HALF_LIFE) -> np.ndarray:
    """Weights for a history ordered oldest -> newest: the newest is 1, each ``half_life`` older halves."""
    age = np.arange(n - 1, -1, -1, dtype=np.float64)
    return (0.5 ** (age / max(half_life, 1e-9))).astype(np.float32)


#: ``set(map(type, ids)) <= STR_ONLY``: whether every id is exactly a ``str``, tested in C (map and set) instead of
#: a generator per id: 400 ids in 6.6 us instead of 13.8 (MovieLens bundle ids), the same answer
STR_ONLY = frozenset((str,))


def all_str(ids: Iterable[object]) -> bool:
    """Whether every id is exactly a ``str`` (``str(i)`` would be ``i`` itself), tested in C."""
    return set(map(type, ids)) <= STR_ONLY


def history_rows(history: Sequence[str], item_index: pd.Index | Mapping[str, int]) -> np.ndarray:
    """Catalogue rows of a history's item ids (oldest -> newest), unknown ids dropped, order kept.

    A mapping's ``get`` runs in C over ids that are all exactly ``str`` (``map``/``np.fromiter``, no ``str()``
    per id): the same rows, 400 ids in 21 us instead of 35 (the ranker's candidate ids each request, MovieLens
    bundle)."""
    if isinstance(item_index, pd.Index):
        rows = item_index.get_indexer(pd.Index([str(h) for h in history], dtype=object))
    elif all_str(history):
        rows = np.fromiter(map(item_index.get, history, repeat(-1)), dtype=np.int64, count=len(history))
    else:
        rows = np.asarray([item_index.get(str(h), -1) for h in history], dtype=np.int64)
    return rows[rows >= 0].astype(np.int64)


def fold_in_user(
    item_factors: np.ndarray,
    rows: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    method: str = "ls",
    reg: float = 0.1,
    alpha: float = 10.0,
    gram: np.ndarray | None = None,
) -> np.ndarray:
    """A user vector for someone the model never saw, from their history's item rows.

    ``method="ls"``: the implicit-ALS least-squares fit (Hu et al.) against *all* item factors:
    ``u = argmin sum_i c_i (p_i - u.v_i)^2 + reg |u|^2`` with ``p=1, c=1+alpha*w`` on the history and
    ``p=0, c=1`` elsewhere, solved in ``O(h d^2 + d^3)`` with the precomputed Gram matrix ``V^T V``
    (pass ``gram`` to avoid recomputing it). ``method="mean"``: the weighted mean of the history's
    item factors. An empty history gives the zero vector (scores reduce to the item bias).
    """
    item_factors = np.asarray(item_factors, dtype=np.float32)
    d = item_factors.shape[1]
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.zeros(d, dtype=np.float32)
    w = np.ones(rows.size, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != rows.shape:
        raise ValueError(f"weights: expected shape {rows.shape}, got {w.shape}")
    vh = item_factors[rows].astype(np.float64)
    if method == "mean":
        return (w @ vh / max(w.sum(), 1e-12)).astype(np.float32)
    if method != "ls":
        raise ValueError(f"method: expected 'ls' or 'mean', got {method!r}")
    g = (item_factors.T.astype(np.float64) @ item_factors) if gram is None else np.asarray(gram, np.float64)
    conf = alpha * w
    a = g + (vh * conf[:, None]).T @ vh + reg * np.eye(d)
    rhs = ((1.0 + conf)[:, None] * vh).sum(axis=0)
    return np.linalg.solve(a, rhs).astype(np.float32)


def cf_scores_for_history(
    history: Sequence[str],
    item_index: pd.Index | Mapping[str, int],
    item_factors: np.ndarray,
    item_bias: np.ndarray | None = None,
    *,
    half_life: float = DEFAULT_HALF_LIFE,
    method: str = "ls",
    gram: np.ndarray | None = None,
    reg: float = 0.1,
    alpha: float = 10.0,
) -> np.ndarray:
    """CF scores over the whole catalogue for a user known only by recent item ids (oldest -> newest)."""
    rows = history_rows(history, item_index)
    u = fold_in_user(
        item_factors, rows, recency_weights(rows.size, half_life), method=method, gram=gram, reg=reg, alpha=alpha
    )
    scores = np.asarray(item_factors, dtype=np.float32) @ u
    if item_bias is not None:
        scores = scores + item_bias
    return scores.astype(np.float32)


def cb_profile_from_history(
    item_vectors: np.ndarray,
    rows: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    half_life: float = DEFAULT_HALF_LIFE,
) -> np.ndarray:
    """Content profile: L2-normalised, recency-weighted mean of the history's item vectors (oldest ->
    newest). ``weights`` overrides the recency weights. An empty history gives the zero vector."""
    item_vectors = np.asarray(item_vectors, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.zeros(item_vectors.shape[1], dtype=np.float32)
    w = recency_weights(rows.size, half_life) if weights is None else np.asarray(weights, dtype=np.float32)
    prof = w @ item_vectors[rows]
    norm = float(np.linalg.norm(prof))
    return (prof / norm if norm > 0 else prof).astype(np.float32)


# ------------------------------------------------------------------------------------------ artifacts


def write_ids(path: Path, ids: Sequence[str]) -> None:
    pd.DataFrame({ID_COLUMN: pd.Series(np.asarray(ids, dtype=object)).astype(str)}).to_parquet(path, index=False)


def read_ids(path: Path) -> pd.Index:
    return pd.Index(pd.read_parquet(path)[ID_COLUMN].astype(str).to_numpy(dtype=object))


@dataclass
class CFArtifacts:
    """What the CF node serves from: factors, biases and id maps (all plain arrays, no pickles)."""

    user_ids: pd.Index
    item_ids: pd.Index
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    meta: dict

    @classmethod
    def load(cls, folder: Path | str) -> CFArtifacts:
        folder = Path(folder)
        for name in (USER_FACTORS, ITEM_FACTORS, ITEM_BIAS, USER_IDS, ITEM_IDS):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder / name}: CF artifact missing")
        meta = json.loads((folder / CF_META).read_text()) if (folder / CF_META).exists() else {}
        return cls(
            user_ids=read_ids(folder / USER_IDS),
            item_ids=read_ids(folder / ITEM_IDS),
            user_factors=np.load(folder / USER_FACTORS),
            item_factors=np.load(folder / ITEM_FACTORS),
            item_bias=np.load(folder / ITEM_BIAS),
            meta=meta,
        )

    def gram(self) -> np.ndarray:
        """``V^T V`` for :func:`fold_in_user`; compute once per process."""
        return self.item_factors.T.astype(np.float64) @ self.item_factors

    def user_vector(
        self, user_id: str, history: Sequence[str] = (), gram: np.ndarray | None = None, **fold_kwargs
    ) -> np.ndarray | None:
        """Learned vector of a known user, else a fold-in from ``history``; None when neither exists."""
        row = self.user_ids.get_indexer([str(user_id)])[0]
        if row >= 0:
            return self.user_factors[row]
        rows = history_rows(history, self.item_ids)
        if rows.size == 0:
            return None
        half_life = fold_kwargs.pop("half_life", DEFAULT_HALF_LIFE)
        return fold_in_user(
            self.item_factors,
            rows,
            recency_weights(rows.size, half_life),
            gram=gram if gram is not None else self.gram(),
            **fold_kwargs,
        )


def load_item_vectors(folder: Path | str) -> tuple[pd.Index, np.ndarray, dict]:
    """Content item vectors exported by :meth:`ContentRecommender.export`: ``(item_ids, vectors, meta)``."""
    folder = Path(folder)
    for name in (ITEM_VECTORS, ITEM_IDS):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name}: content artifact missing")
    meta = json.loads((folder / CB_META).read_text()) if (folder / CB_META).exists() else {}
    return read_ids(folder / ITEM_IDS), np.load(folder / ITEM_VECTORS), meta
