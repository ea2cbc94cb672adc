"""Pure ranking and beyond-accuracy metrics, vectorised over users.

Two layers, in the style of microsoft/recommenders:
- array functions over a ``hits`` matrix (users x k, True where the item at that rank is a target)
  and ``n_relevant`` (targets per user) — what the evaluator uses, one row per user;
- :func:`ranking_metrics` over long DataFrames (``col_user``/``col_item``/``col_prediction``
  defaulting to the canonical column constants) for anyone holding recommendations as a table.

Definitions (binary relevance, cut-off k):
NDCG = DCG / ideal DCG with ``min(k, n_relevant)`` targets at the top;
Recall = hits / min(k, n_relevant) (ARCHITECTURE §5, so a perfect list scores 1 for any user);
Precision = hits / k; MAP = sum of precision at each hit rank / min(k, n_relevant); HitRate = any hit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartreco.data import columns as C

DEFAULT_K = 10

NDCG = "ndcg"
RECALL = "recall"
PRECISION = "precision"
MAP = "map"
HIT_RATE = "hitrate"
COVERAGE = "coverage"
DIVERSITY = "diversity"
NOVELTY = "novelty"
POPULAR_SHARE = "popular_share"
FIT_SECONDS = "fit_seconds"
MS_PER_USER = "ms_per_user"

#: per-user ranking metrics, in report order
RANKING_METRICS: tuple[str, ...] = (NDCG, RECALL, PRECISION, MAP, HIT_RATE)


def metric_key(name: str, k: int = DEFAULT_K) -> str:
    """``ndcg@10`` style keys used in the JSON, reports and MLflow."""
    return f"{name}@{k}"


def _check(hits: np.ndarray, n_relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise ValueError(f"hits: expected a 2-D (users x k) array, got shape {hits.shape}")
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if n_relevant.shape != (hits.shape[0],):
        raise ValueError(f"n_relevant: expected shape ({hits.shape[0]},), got {n_relevant.shape}")
    return hits, n_relevant


def _denominator(n_relevant: np.ndarray, k: int) -> np.ndarray:
    """min(k, n_relevant), with users without targets giving 0 instead of a division by zero."""
    return np.minimum(n_relevant, k)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    hits, n_relevant = _check(hits, n_relevant)
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    ideal_cum = np.concatenate(([0.0], np.cumsum(discounts)))
    idcg = ideal_cum[_denominator(n_relevant, k).astype(np.int64)]
    return _safe_div(dcg, idcg)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    hits, n_relevant = _check(hits, n_relevant)
    return _safe_div(hits.sum(axis=1).astype(np.float64), _denominator(n_relevant, hits.shape[1]))


def precision_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    hits, n_relevant = _check(hits, n_relevant)
    return hits.sum(axis=1) / float(hits.shape[1])


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    hits, n_relevant = _check(hits, n_relevant)
    k = hits.shape[1]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return _safe_div((precision_at_rank * hits).sum(axis=1), _denominator(n_relevant, k))


def hit_rate_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    hits, n_relevant = _check(hits, n_relevant)
    return hits.any(axis=1).astype(np.float64)


METRIC_FUNCTIONS = {
    NDCG: ndcg_at_k,
    RECALL: recall_at_k,
    PRECISION: precision_at_k,
    MAP: map_at_k,
    HIT_RATE: hit_rate_at_k,
}


def per_user_metrics(hits: np.ndarray, n_relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Every ranking metric for every user (arrays aligned with the rows of ``hits``)."""
    return {name: fn(hits, n_relevant) for name, fn in METRIC_FUNCTIONS.items()}


# --- beyond accuracy: over the top-k item-index matrix (users x k) --------------------------------


def catalogue_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    if n_items <= 0:
        return 0.0
    return float(np.unique(np.asarray(top_items).ravel()).size / n_items)


def intra_list_entropy(top_items: np.ndarray, item_category: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of the category mix inside each list; 0 = one category only.

    ``item_category`` maps item index -> integer category code.
    """
    cats = np.asarray(item_category)[np.asarray(top_items)]
    n_users, k = cats.shape
    n_cats = int(cats.max()) + 1 if cats.size else 1
    counts = np.zeros((n_users, n_cats), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(n_users), k), cats.ravel()), 1.0)
    p = counts / k
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=1)


def item_self_information(popularity_counts: np.ndarray, n_users: int) -> np.ndarray:
    """``-log2(p(i))`` with ``p(i)`` = share of train users who interacted with ``i`` (an unseen item
    counts as seen once, so its novelty is finite)."""
    p = np.maximum(np.asarray(popularity_counts, dtype=np.float64), 1.0) / max(n_users, 1)
    return -np.log2(np.minimum(p, 1.0))


def novelty(top_items: np.ndarray, self_information: np.ndarray) -> np.ndarray:
    """Mean self-information of each list (higher = less popular items)."""
    return np.asarray(self_information)[np.asarray(top_items)].mean(axis=1)


def popular_share(top_items: np.ndarray, is_popular: np.ndarray) -> np.ndarray:
    """Share of each list drawn from the popular head (e.g. the top-10% items by train popularity)."""
    return np.asarray(is_popular, dtype=np.float64)[np.asarray(top_items)].mean(axis=1)


# --- DataFrame layer -----------------------------------------------------------------------------


def ranking_metrics(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    *,
    col_user: str = C.USER_ID,
    col_item: str = C.ITEM_ID,
    col_prediction: str = C.PREDICTION,
    k: int = DEFAULT_K,
) -> pd.DataFrame:
    """Per-user ranking metrics from long tables: ``rating_true`` = one row per (user, target item),
    ``rating_pred`` = scored recommendations (the top ``k`` by ``col_prediction`` are used).

    Users in ``rating_true`` without predictions score 0; users only in ``rating_pred`` are ignored.
    """
    truth = rating_true[[col_user, col_item]].drop_duplicates()
    users = pd.Index(truth[col_user].unique())
    n_relevant = truth.groupby(col_user).size().reindex(users).to_numpy()
    pred = rating_pred[rating_pred[col_user].isin(users)]
    pred = pred.sort_values([col_user, col_prediction], ascending=[True, False], kind="stable")
    pred = pred.assign(_rank=pred.groupby(col_user).cumcount())
    pred = pred[pred["_rank"] < k]
    hit = pred.merge(truth.assign(_hit=True), on=[col_user, col_item], how="left")["_hit"].notna()
    hits = np.zeros((len(users), k), dtype=bool)
    hits[users.get_indexer(pred[col_user]), pred["_rank"].to_numpy()] = hit.to_numpy(dtype=bool)
    out = pd.DataFrame({name: values for name, values in per_user_metrics(hits, n_relevant).items()},
                       index=users)
    out.index.name = col_user
    return out
