"""The ranker's candidate features at 10M items: index look-ups + the same feature code on a small sub-catalogue.

:func:`smartreco.models.hybrid_features.candidate_features` scores the whole catalogue densely (CF and
content dot products, popularity top-k), which is O(n_items) per request: ~1 s at 10M items. Here the
retrievers are answered by the retrieval indexes (CF and CB :class:`~smartreco.retrieval.index.Index`)
and a precomputed popularity order, every row a feature can read (history, exclusions, their
co-occurrence neighbours, the retrieved and extra candidates) is gathered into a sub-catalogue of a
few thousand rows, and the *unchanged* ``candidate_features`` runs on it; rows are mapped back.

With exact indexes this returns exactly the dense path's candidates and features (tested): each
retriever's global top-k after exclusions is inside the sub-catalogue and nothing outside it can enter
a top-k list, and local row order is global row order, so ties break the same way. With an ANN index
the CF/CB lists are the ANN's, re-ranked exactly within the sub-catalogue.
"""

from __future__ import annotations

import numpy as np

from smartreco.models import hybrid_features as F


def popularity_order(pop_short: np.ndarray, pop_long: np.ndarray, k: int = 10_000) -> np.ndarray:
    """Rows of the ``k`` most popular items by the ranker's popularity score, ties by row (as ``F.top_k``)."""
    score = np.asarray(pop_long, dtype=np.float64) + 3.0 * np.asarray(pop_short, dtype=np.float64)
    score = np.where(np.isfinite(score), score, -np.inf)
    k = int(min(k, len(score)))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-score, k - 1)[:k]
    thresh = score[part].min()
    tied = np.flatnonzero(score == thresh)  # every row tied with the k-th: the lowest rows win, as in top_k
    part = np.union1d(part[score[part] > thresh], tied)
    order = part[np.lexsort((part, -score[part]))]
    order = order[np.isfinite(score[order])]  # F.top_k never returns non-finite scores
    return order[:k].astype(np.int64)


def _take(arr: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if arr is None else np.asarray(arr[rows])


def _local_table(ids: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """Global neighbour ids -> positions in ``sub`` (-1 where the neighbour is not in it)."""
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.clip(np.searchsorted(sub, ids), 0, len(sub) - 1)
    ok = (ids >= 0) & (sub[pos] == ids)
    return np.where(ok, pos, -1).astype(np.int32)


def sub_side(side: F.ItemSide, sub: np.ndarray) -> F.ItemSide:
    """The item-side arrays restricted to the sorted rows ``sub`` (neighbour ids re-mapped to local rows)."""
    return F.ItemSide(
        item_factors=_take(side.item_factors, sub),
        item_bias=_take(side.item_bias, sub),
        item_vectors=_take(side.item_vectors, sub),
        nbr_ids=_local_table(side.nbr_ids[sub], sub),
        nbr_scores=np.asarray(side.nbr_scores[sub]),
        nbr_all_ids=None if side.nbr_all_ids is None else _local_table(side.nbr_all_ids[sub], sub),
        nbr_all_scores=_take(side.nbr_all_scores, sub),
        category_code=np.asarray(side.category_code[sub]),
        item_count=np.asarray(side.item_count[sub]),
        item_mean_rating=np.asarray(side.item_mean_rating[sub]),
        created_s=np.asarray(side.created_s[sub]),
        ctx_channel=np.asarray(side.ctx_channel[sub]),
        ctx_device=np.asarray(side.ctx_device[sub]),
        ctx_hour=np.asarray(side.ctx_hour[sub]),
        channel_vocab=side.channel_vocab,
        device_vocab=side.device_vocab,
        knn_ids=None if side.knn_ids is None else _local_table(side.knn_ids[sub], sub),
        knn_scores=_take(side.knn_scores, sub),
        trans_ids=None if side.trans_ids is None else _local_table(side.trans_ids[sub], sub),
        trans_scores=_take(side.trans_scores, sub),
    )


def _neighbours(table: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    if table is None or len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    ids = np.asarray(table[np.unique(rows)], dtype=np.int64).ravel()
    return ids[ids >= 0]


def indexed_candidate_features(
    side: F.ItemSide,
    history: np.ndarray,
    user_vec: np.ndarray | None,
    pop_short: np.ndarray,
    pop_long: np.ndarray,
    cutoff_s: float,
    context: dict | None,
    exclude: np.ndarray,
    cfg: F.CandidateConfig,
    extra_candidates: np.ndarray | None = None,
    *,
    cf_index,
    cb_index,
    pop_order: np.ndarray,
) -> F.UserCandidates:
    """Same arguments and result as ``F.candidate_features``, plus the indexes and the popularity order."""
    n = side.n_items
    history = np.asarray(history, dtype=np.int64)
    excl = np.unique(np.concatenate([np.asarray(exclude, dtype=np.int64), history]))
    parts = [history, excl]
    user_vec = F.usable_vector(user_vec)
    if user_vec is not None and side.item_factors is not None and cfg.k_cf > 0:
        ids, _ = cf_index.search(user_vec[None, :], cfg.k_cf, exclude=[excl])
        parts.append(ids[0][ids[0] >= 0])
    profile = F.user_profile(history, side.item_vectors)
    if profile is not None and cfg.k_cb > 0:
        ids, _ = cb_index.search(profile[None, :], cfg.k_cb, exclude=[excl])
        parts.append(ids[0][ids[0] >= 0])
    parts.append(np.asarray(pop_order[: cfg.k_pop + len(excl)], dtype=np.int64))
    parts.append(_neighbours(side.nbr_ids, history))
    if side.nbr_all_ids is not None:
        parts.append(_neighbours(side.nbr_all_ids, excl))
    parts.append(_neighbours(side.knn_ids, history))
    parts.append(_neighbours(side.trans_ids, history[-F.RECENT_ITEMS:]))
    extra = None
    if extra_candidates is not None and len(extra_candidates):
        extra = np.asarray(extra_candidates, dtype=np.int64)
        extra = extra[(extra >= 0) & (extra < n)]
        parts.append(extra)
    sub = np.unique(np.concatenate(parts))
    local = sub_side(side, sub)
    loc = lambda rows: np.searchsorted(sub, np.asarray(rows, dtype=np.int64))  # noqa: E731 - all rows are in sub
    uc = F.candidate_features(
        local,
        loc(history),
        user_vec,
        np.asarray(pop_short[sub]),
        np.asarray(pop_long[sub]),
        cutoff_s,
        context,
        loc(np.asarray(exclude, dtype=np.int64)),
        cfg,
        extra_candidates=None if extra is None else loc(extra),
    )
    because = np.where(uc.because >= 0, sub[np.maximum(uc.because, 0)], -1).astype(np.int64)
    return F.UserCandidates(
        items=sub[uc.items],
        features=uc.features,
        because=because,
        sources={k: sub[v] for k, v in uc.sources.items()},
    )
