"""Ranker features for the hybrid, shared by training (pipeline venv) and serving (serving venv).

numpy/pandas only, so the Seldon combiner computes exactly the features the LightGBM ranker learned
on: the training loop and :mod:`smartreco.serving.runtime` both call :func:`candidate_features`.
Everything item-side is an array aligned to the catalogue order and everything that grows with the
catalogue is O(n_items * k) (factors, vectors, a top-k neighbour table), never n x n, so the same
code serves 10M items (the dense CF/CB dot products become ANN look-ups at that size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smartreco.models.serving_math import cb_profile_from_history

#: (feature, component) in column order; the component groups SHAP contributions into explanations.
FEATURES: tuple[tuple[str, str], ...] = (
    ("cf_score", "cf"),
    ("cf_rank", "cf"),
    ("cooc_score", "cooccurrence"),
    ("cooc_max", "cooccurrence"),
    ("cooc_rank", "cooccurrence"),
    ("cooc_recent", "cooccurrence"),
    ("cooc_all_score", "cooccurrence"),
    ("knn_score", "cooccurrence"),
    ("knn_rank", "cooccurrence"),
    ("covisit_score", "cooccurrence"),
    ("covisit_rank", "cooccurrence"),
    ("trans_score", "cooccurrence"),
    ("trans_rank", "cooccurrence"),
    ("trans_last", "cooccurrence"),
    ("because_age", "cooccurrence"),
    ("cb_score", "cb"),
    ("cb_rank", "cb"),
    ("category_affinity", "cb"),
    ("cb_last_sim", "cb"),
    ("cb_recent_max", "cb"),
    ("pop_short", "popularity"),
    ("pop_long", "popularity"),
    ("pop_rank", "popularity"),
    ("item_count", "popularity"),
    ("item_mean_rating", "popularity"),
    ("item_age_days", "popularity"),
    ("user_activity", "context"),
    ("ctx_channel_share", "context"),
    ("ctx_device_share", "context"),
    ("ctx_hour_share", "context"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
#: feature name -> column of the ranker's matrix
_COLUMN: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
COMPONENTS: tuple[str, ...] = ("cf", "cb", "cooccurrence", "popularity", "context")
#: the candidate retrievers, in :attr:`UserCandidates.sources` order; ``cooccurrence`` is the EASE-family
#: item-item table (pruned EASE up to ``ease_max_items``), ``itemknn`` the cosine table over all
#: interactions, ``covisit`` that table from the last items only, ``transitions`` next-item counts
SOURCES: tuple[str, ...] = ("cf", "cooccurrence", "itemknn", "covisit", "transitions", "cb", "popularity")
#: feature columns owned by each retriever (dropped with it in the ablation)
SOURCE_FEATURES: dict[str, tuple[str, ...]] = {
    "cf": ("cf_score", "cf_rank"),
    "cooccurrence": ("cooc_score", "cooc_max", "cooc_rank", "cooc_recent", "cooc_all_score"),
    "itemknn": ("knn_score", "knn_rank"),
    "covisit": ("covisit_score", "covisit_rank"),
    "transitions": ("trans_score", "trans_rank", "trans_last"),
    "cb": ("cb_score", "cb_rank"),
    "popularity": ("pop_rank",),
}
#: feature groups that belong to no retriever (ablated on their own)
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "sequence": ("because_age", "trans_last", "covisit_score", "cooc_recent"),
    "content_similarity": ("cb_last_sim", "cb_recent_max", "category_affinity"),
    "item_statistics": ("pop_short", "pop_long", "item_count", "item_mean_rating", "item_age_days"),
    "context": ("user_activity", "ctx_channel_share", "ctx_device_share", "ctx_hour_share"),
}
#: popularity windows before the cutoff (the user's last event offline, "now" when serving)
POP_SHORT_DAYS = 90
POP_LONG_DAYS = 365
HOUR_BUCKETS = 4  # 6-hour buckets
#: how many history items count as "recent" for the cooc_recent feature
RECENT_ITEMS = 5
#: weight of the j-th most recent history item (j = 0 the last) for the covisit / transitions retrievers
RECENCY_DECAY = 0.6
SECONDS_PER_DAY = 86_400.0


@dataclass
class CandidateConfig:
    """How many candidates each retriever contributes (the same numbers offline and online)."""

    k_cf: int = 100
    k_cooc: int = 100
    k_cb: int = 30
    k_pop: int = 30
    k_knn: int = 40
    k_covisit: int = 40
    k_trans: int = 40


@dataclass
class ItemSide:
    """Catalogue-aligned arrays the features read; a bundle stores exactly these (memory-mapped)."""

    item_factors: np.ndarray | None  # (n, d) CF item factors
    item_bias: np.ndarray | None  # (n,) CF item bias (None = no bias)
    item_vectors: np.ndarray | None  # (n, e) L2-normalised content vectors
    nbr_ids: np.ndarray  # (n, k) int32 neighbour item indices, -1 = none
    nbr_scores: np.ndarray  # (n, k) float32
    nbr_all_ids: np.ndarray | None  # (n, k) neighbours over ALL interactions (not only positives), or None
    nbr_all_scores: np.ndarray | None
    category_code: np.ndarray  # (n,) int32
    item_count: np.ndarray  # (n,) float32 interactions
    item_mean_rating: np.ndarray  # (n,) float32, nan = no rating
    created_s: np.ndarray  # (n,) float64 epoch seconds, nan = unknown
    ctx_channel: np.ndarray  # (n, len(channel_vocab)) share of an item's events per channel
    ctx_device: np.ndarray  # (n, len(device_vocab))
    ctx_hour: np.ndarray  # (n, HOUR_BUCKETS)
    channel_vocab: list[str] = field(default_factory=list)
    device_vocab: list[str] = field(default_factory=list)
    knn_ids: np.ndarray | None = None  # (n, k) cosine neighbours over all interactions (item-kNN), or None
    knn_scores: np.ndarray | None = None
    trans_ids: np.ndarray | None = None  # (n, k) next items after each item in users' sequences, or None
    trans_scores: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return len(self.category_code)


# ----------------------------------------------------------------------------- retrievers (sparse)
def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None, ids: np.ndarray | None = None) -> tuple:
    """Indices and scores of the k best entries (descending), skipping ``exclude`` positions."""
    s = np.asarray(scores, dtype=np.float64)
    dense = ids is None
    if dense:
        ids = np.arange(len(s))
    if exclude is not None and len(exclude):
        keep = _not_excluded(ids, len(s), exclude, dense)
        ids, s = ids[keep], s[keep]
    finite = np.isfinite(s)
    ids, s = ids[finite], s[finite]
    if len(s) == 0 or k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    k = min(k, len(s))
    part = np.argpartition(-s, k - 1)[:k]
    order = part[np.lexsort((ids[part], -s[part]))]  # ties broken by index: deterministic
    return ids[order].astype(np.int64), s[order]


def _not_excluded(ids: np.ndarray, n: int, exclude: np.ndarray, dense: bool) -> np.ndarray:
    """``~np.isin(ids, exclude)`` without its sort of ``ids`` + ``exclude`` (seven calls per request): over a
    whole catalogue (``ids`` = 0..n-1) a mask set at the excluded rows; over a retriever's sorted unique ids
    (what :func:`neighbour_scores` returns) the excluded ids found by binary search. The same answer."""
    exclude = np.asarray(exclude)
    if exclude.dtype.kind not in "iu":
        return ~np.isin(ids, exclude)
    if dense:
        keep = np.ones(n, dtype=bool)
        keep[exclude[(exclude >= 0) & (exclude < n)]] = False
        return keep
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" or not bool(np.all(ids[1:] > ids[:-1])):
        return ~np.isin(ids, exclude)
    keep = np.ones(len(ids), dtype=bool)
    if len(ids):
        pos = np.searchsorted(ids, exclude)
        safe = np.minimum(pos, len(ids) - 1)
        keep[safe[(pos < len(ids)) & (ids[safe] == exclude)]] = False
    return keep


def _banned_rows(exclude: np.ndarray, n: int) -> np.ndarray:
    """``exclude`` (row ids; out-of-range ones ignored) as an ``n``-row mask: built once per request, it answers
    every retriever's exclusion and the extra candidates' filter by one gather each (a ~10k-row catalogue)."""
    banned = np.zeros(n, dtype=bool)
    exclude = np.asarray(exclude, dtype=np.int64)
    banned[exclude[(exclude >= 0) & (exclude < n)]] = True
    return banned


def _top_k_banned(
    scores: np.ndarray, k: int, banned: np.ndarray, exclude: np.ndarray, ids: np.ndarray | None = None
) -> tuple:
    """``top_k(scores, k, exclude, ids)`` with the exclusion also given as its :func:`_banned_rows` mask: the
    same admissible ids and scores in the same order (so ``argpartition`` sees the same array and picks the same
    ties), with one mask and one gather instead of an ``arange``, two filters and a binary search. Dense
    ``scores`` span the catalogue (``ids`` None); otherwise ``ids`` are a retriever's rows. Scores or ids the
    mask cannot answer (another length, an id outside it) go to :func:`top_k`."""
    s = np.asarray(scores, dtype=np.float64)
    if ids is None:
        if len(s) != len(banned):
            return top_k(s, k, exclude)
        keep = np.isfinite(s)
        keep &= ~banned
        ids = np.flatnonzero(keep)
    else:
        ids = np.asarray(ids)
        if len(ids) and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= len(banned)):
            return top_k(s, k, exclude, ids=ids)
        keep = ~banned[ids]
        keep &= np.isfinite(s)
        ids = ids[keep]
    s = s[keep]
    if len(s) == 0 or k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    k = min(k, len(s))
    part = np.argpartition(-s, k - 1)[:k]
    order = part[np.lexsort((ids[part], -s[part]))]
    return ids[order].astype(np.int64), s[order]


@dataclass(frozen=True)
class TopList:
    """A dense retriever's top list computed elsewhere over the same scores (the fused arm's CB node, before the
    ranker): ``excluded`` (sorted unique rows it excluded), its ``ids`` best first, padded with -1 where a score
    was not finite, and their ``scores``."""

    excluded: np.ndarray
    ids: np.ndarray
    scores: np.ndarray


def _top_k_from(top: TopList | None, k: int, exclude: np.ndarray) -> np.ndarray | None:
    """The ids ``_top_k_banned(scores, k, ...)`` returns, read from a longer top list over the same scores and
    exclusions, or None when the list cannot say. Exact: the list holds the ``len(top.ids)`` best admissible
    scores, so when its ``k``-th and ``k+1``-th finite scores differ its first ``k`` are the only top-``k`` set
    (argpartition's pick among tied scores is never needed); with fewer finite scores than ``k + 1`` its padding
    is excluded rows (-inf), so it holds every admissible finite score. Ordered as ``_top_k_banned`` orders (score
    descending, then id). A list with a nan or +inf score is not read. Saves the request's second partition of
    the catalogue-wide content row."""
    if top is None or k <= 0 or len(top.ids) <= k or not np.array_equal(top.excluded, exclude):
        return None
    scores = np.asarray(top.scores, dtype=np.float64)
    if np.isnan(scores).any() or np.isposinf(scores).any():
        return None
    finite = top.ids >= 0
    ids, vals = top.ids[finite], scores[finite]
    if len(ids) > k:
        if not vals[k - 1] > vals[k]:  # a tie at the cut: the partition's pick among the tied decides
            return None
        ids, vals = ids[:k], vals[:k]
    return ids[np.lexsort((ids, -vals))].astype(np.int64)


def _pool_ranks(pool: np.ndarray, ids: np.ndarray, missing: int) -> np.ndarray:
    """:func:`_ranks` of a retriever's top list (unique ids, as :func:`top_k` returns) that lies inside the
    sorted unique ``pool`` (the candidate pool is the union of those lists): a scatter at the pool positions,
    no sort of the list. A list with an id outside the pool goes to ``_ranks``."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.full(len(pool), float(missing), dtype=np.float32)
    if len(ids) == 0:
        return out
    pos = np.minimum(np.searchsorted(pool, ids), len(pool) - 1) if len(pool) else None
    if pos is None or not (pool[pos] == ids).all():
        return _ranks(ids, pool, missing)
    out[pos] = np.arange(1, len(ids) + 1, dtype=np.float32)
    return out


def _best_contribution(
    history: np.ndarray, nbr_ids: np.ndarray, nbr_scores: np.ndarray, pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the sorted unique ``pool`` (catalogue rows, >= 0): the largest neighbour similarity any history
    item gives it and that item's history position (``0.0``/``-1`` where none does): :func:`neighbour_scores`'
    max/argmax, read only for the pool. Its per-item sort then runs over the pool's entries (a few thousand)
    instead of every entry of the history's neighbour rows (~23k for a 232-item history); equal contributions
    keep the same order (the earlier history position first). Negative neighbour ids are none; ids outside the
    pool are skipped."""
    best = np.zeros(len(pool), dtype=np.float64)
    src = np.full(len(pool), -1, dtype=np.int64)
    if len(history) == 0 or len(pool) == 0:
        return best, src
    ids = nbr_ids[history]  # (h, k)
    size = int(max(len(nbr_ids), pool[-1] + 1))
    if size <= _DENSE_COUNT_RATIO * ids.size:  # a catalogue-sized membership mask, one gather per entry
        member = np.zeros(size + 2, dtype=bool)  # slots size and -1 (= size + 1) stay False: ids out of range
        member[pool] = True
        hits = member[np.clip(ids, -1, size)]  # -1 = no neighbour (any negative id is none, as in neighbour_scores)
    else:  # a large catalogue: binary search in the pool
        pos = np.minimum(np.searchsorted(pool, ids), len(pool) - 1)
        hits = pool[pos] == ids
    flat = np.flatnonzero(hits)  # the entries that hit the pool, in row-major order
    if len(flat) == 0:
        return best, src
    e_ids = ids.ravel()[flat].astype(np.int64)
    e_sc = nbr_scores[history].ravel()[flat].astype(np.float64)
    order = np.lexsort((-e_sc, e_ids))  # per item, best contribution first
    e_ids = e_ids[order]
    first = np.r_[0, np.flatnonzero(np.diff(e_ids)) + 1]
    at = np.searchsorted(pool, e_ids[first])
    best[at] = e_sc[order][first]
    src[at] = flat[order][first] // ids.shape[1]
    return best, src


#: :func:`neighbour_scores` counts by a catalogue-sized bincount instead of sorting when the catalogue has at
#: most this many rows per gathered neighbour id (a 10M-item catalogue keeps the sort)
_DENSE_COUNT_RATIO = 32


def neighbour_scores(
    history: np.ndarray,
    nbr_ids: np.ndarray,
    nbr_scores: np.ndarray,
    weights: np.ndarray | None = None,
    with_best: bool = True,
) -> tuple:
    """Sum of neighbour similarities over the history, sparse: (item ids, sum, max, argmax history pos).

    ``weights`` (one per history item) scale each history item's row, e.g. by recency. ``with_best=False``:
    the caller needs only the sums; max and argmax are None (their per-item sort is skipped)."""
    if len(history) == 0 or nbr_ids is None:
        e = np.empty(0, dtype=np.int64)
        return e, np.empty(0), np.empty(0), e
    ids = nbr_ids[history]  # (h, k)
    sc = nbr_scores[history].astype(np.float64)
    if weights is not None:
        sc = sc * np.asarray(weights, dtype=np.float64)[:, None]
    ok = ids >= 0
    ids, sc = ids[ok].astype(np.int64), sc[ok]
    # the history position of each entry only where the best contribution is asked for
    src = np.broadcast_to(np.arange(len(history))[:, None], ok.shape)[ok] if with_best else None
    if len(ids) == 0:
        e = np.empty(0, dtype=np.int64)
        return e, np.empty(0), np.empty(0), e
    n = len(nbr_ids)
    if n <= _DENSE_COUNT_RATIO * len(ids):  # one pass over a catalogue-sized count, no sort of the ids
        counts = np.bincount(ids, minlength=n)
        uniq = np.flatnonzero(counts)
        # per item the same additions in the same order as the bincount over np.unique's inverse
        total = np.bincount(ids, weights=sc, minlength=n)[uniq]
        if not with_best:
            return uniq, total, None, None
        inv = (np.cumsum(counts > 0) - 1)[ids]
    else:
        uniq, inv = np.unique(ids, return_inverse=True)
        total = np.bincount(inv, weights=sc, minlength=len(uniq))
        if not with_best:
            return uniq, total, None, None
    order = np.lexsort((-sc, inv))  # per item, best contribution first
    first = np.r_[0, np.flatnonzero(np.diff(inv[order])) + 1]
    best = sc[order][first]
    best_src = src[order][first]
    return uniq, total, best, best_src


def recent_weights(n: int) -> np.ndarray:
    """``RECENCY_DECAY ** j`` for the last ``min(n, RECENT_ITEMS)`` history items, oldest first."""
    m = min(n, RECENT_ITEMS)
    return RECENCY_DECAY ** np.arange(m - 1, -1, -1, dtype=np.float64)


def _lookup(ids: np.ndarray, values: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``values`` of ``cand`` in the sorted ``ids`` (0 where absent)."""
    if len(ids) == 0:
        return np.zeros(len(cand))
    pos = np.clip(np.searchsorted(ids, cand), 0, len(ids) - 1)
    return np.where(ids[pos] == cand, values[pos], 0.0)


def user_profile(history: np.ndarray, item_vectors: np.ndarray | None) -> np.ndarray | None:
    """Recency-weighted content profile of the history (None when there is nothing to average)."""
    if item_vectors is None or len(history) == 0:
        return None
    prof = cb_profile_from_history(item_vectors, history)
    return prof if float(np.linalg.norm(prof)) > 0 else None


def content_scores(history: np.ndarray, item_vectors: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(profile, item_vectors @ profile)`` of a history (float32), ``(None, None)`` without a profile: the
    content retriever's dense scores, one pass over the catalogue's vectors (~1 ms at 10k x 513)."""
    profile = user_profile(history, item_vectors)
    if profile is None:
        return None, None
    return profile, np.asarray(item_vectors @ profile)


def usable_vector(vec: np.ndarray | None) -> np.ndarray | None:
    """A user vector worth scoring with: None for a missing or all-zero one (no evidence)."""
    if vec is None:
        return None
    vec = np.asarray(vec, dtype=np.float32)
    return vec if bool(np.any(vec != 0)) else None


def cf_scores(side: ItemSide, user_vec: np.ndarray) -> np.ndarray:
    """Dense CF scores ``V u (+ b)`` over the catalogue (an ANN index replaces this at 10M items)."""
    s = np.asarray(side.item_factors @ np.asarray(user_vec, dtype=np.float32), dtype=np.float64)
    return s + side.item_bias if side.item_bias is not None else s


def window_counts(event_keys: np.ndarray, span: int, items: np.ndarray, cutoff_s: float, days: float) -> np.ndarray:
    """Events per item in ``[cutoff - days, cutoff)``; ``event_keys`` = sorted item * span + seconds."""
    base = np.asarray(items, dtype=np.int64) * span
    hi = np.searchsorted(event_keys, base + int(cutoff_s), side="left")
    lo = np.searchsorted(event_keys, base + int(cutoff_s - days * SECONDS_PER_DAY), side="left")
    return (hi - lo).astype(np.float32)


def hour_bucket(hour: float | int | None) -> int | None:
    if hour is None:
        return None
    try:
        return int(float(hour)) % 24 * HOUR_BUCKETS // 24
    except (TypeError, ValueError):
        return None


def _ranks(ids: np.ndarray, cand: np.ndarray, missing: int) -> np.ndarray:
    """1-based position of each candidate in a retriever's list, ``missing`` if absent.

    A sorted look-up (searchsorted), not a dict per call: seven of these per request over a ~450-item pool
    were ~2 ms of Python per request. A retriever's list holds each item once (a top-k); were an id repeated,
    its last position would count, as the dict this replaces did."""
    ids = np.asarray(ids, dtype=np.int64)
    cand = np.asarray(cand, dtype=np.int64)
    if len(ids) == 0:
        return np.full(len(cand), float(missing), dtype=np.float32)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    # the last of equal ids: searchsorted right - 1
    pos = np.searchsorted(sorted_ids, cand, side="right") - 1
    safe = np.clip(pos, 0, len(ids) - 1)
    hit = (pos >= 0) & (sorted_ids[safe] == cand)
    return np.where(hit, order[safe] + 1, missing).astype(np.float32)


def _steps_back(history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """For each item, how many steps back its latest occurrence in ``history`` is (0 = the last item);
    nan where it is not in the history. Vectorised (it was a dict look-up per candidate)."""
    h = np.asarray(history, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if len(h) == 0:
        return np.full(len(items), np.nan, dtype=np.float32)
    rev = h[::-1]  # newest first: np.unique's first index is then the latest occurrence
    uniq, first = np.unique(rev, return_index=True)
    pos = np.clip(np.searchsorted(uniq, items), 0, len(uniq) - 1)
    return np.where(uniq[pos] == items, first[pos], np.nan).astype(np.float32)


@dataclass
class UserCandidates:
    """One user's candidate pool, its feature matrix and, per candidate, the history item behind it."""

    items: np.ndarray  # (c,) item indices
    features: np.ndarray  # (c, len(FEATURE_NAMES)) float32
    because: np.ndarray  # (c,) history item index most responsible, -1 = none
    sources: dict[str, np.ndarray]  # retriever -> its top list (indices)


def candidate_features(
    side: ItemSide,
    history: np.ndarray,
    user_vec: np.ndarray | None,
    pop_short: np.ndarray,
    pop_long: np.ndarray,
    cutoff_s: float,
    context: dict | None,
    exclude: np.ndarray,
    cfg: CandidateConfig,
    extra_candidates: np.ndarray | None = None,
    content: tuple[np.ndarray | None, np.ndarray | None] | None = None,
    cb_top: TopList | None = None,
    pop_score: np.ndarray | None = None,
) -> UserCandidates:
    """Retrieve candidates from CF, co-occurrence, content and popularity, then compute the features.

    ``history`` holds item indices in time order (oldest first); ``pop_*`` are catalogue-wide counts in
    the windows before ``cutoff_s``; ``exclude`` (indices) are never candidates. ``content``: this
    history's ``(profile, item_vectors @ profile)`` when the caller already computed them
    (:func:`content_scores`; the serving runtime shares them with its CB candidates). ``cb_top``: a longer
    top list over those content scores (the serving runtime's CB candidates), from which the content retriever's
    top ``k_cb`` is read when it can be (:func:`_top_k_from`). ``pop_score``: ``pop_long + 3.0 * pop_short``
    as the caller computed it once (the serving runtime, at load: the same float32 sums).
    """
    history = np.asarray(history, dtype=np.int64)
    exclude = np.unique(np.concatenate([np.asarray(exclude, dtype=np.int64), history]))
    n = side.n_items
    banned = _banned_rows(exclude, n)
    # --- retrievers
    cf_all = None
    user_vec = usable_vector(user_vec)
    if user_vec is not None and side.item_factors is not None:
        cf_all = cf_scores(side, user_vec)
        cf_ids, _ = _top_k_banned(cf_all, cfg.k_cf, banned, exclude)
    else:
        cf_ids = np.empty(0, dtype=np.int64)
    nb_ids, nb_sum, _, _ = neighbour_scores(history, side.nbr_ids, side.nbr_scores, with_best=False)
    cooc_ids, _ = _top_k_banned(nb_sum, cfg.k_cooc, banned, exclude, ids=nb_ids)
    profile, cb_row = content if content is not None else content_scores(history, side.item_vectors)
    cb_all = None
    if profile is not None:
        cb_all = np.asarray(cb_row)  # the top-k reads it as float64 (an exact conversion), the feature as float32
        cb_ids = _top_k_from(cb_top, cfg.k_cb, exclude)
        if cb_ids is None:
            cb_ids, _ = _top_k_banned(cb_all, cfg.k_cb, banned, exclude)
    else:
        cb_ids = np.empty(0, dtype=np.int64)
    if pop_score is None:
        pop_score = pop_long + 3.0 * pop_short
    pop_ids, _ = _top_k_banned(pop_score, cfg.k_pop, banned, exclude)
    recent = history[-RECENT_ITEMS:]
    rw = recent_weights(len(history))
    knn_ids_, knn_sum, _, _ = neighbour_scores(history, side.knn_ids, side.knn_scores, with_best=False)
    knn_top, _ = _top_k_banned(knn_sum, cfg.k_knn, banned, exclude, ids=knn_ids_)
    cv_ids, cv_sum, _, _ = neighbour_scores(recent, side.knn_ids, side.knn_scores, rw, with_best=False)
    cv_top, _ = _top_k_banned(cv_sum, cfg.k_covisit, banned, exclude, ids=cv_ids)
    tr_ids, tr_sum, _, _ = neighbour_scores(recent, side.trans_ids, side.trans_scores, rw, with_best=False)
    tr_top, _ = _top_k_banned(tr_sum, cfg.k_trans, banned, exclude, ids=tr_ids)
    parts = [cf_ids, cooc_ids, cb_ids, pop_ids, knn_top, cv_top, tr_top]
    if extra_candidates is not None and len(extra_candidates):
        extra = np.asarray(extra_candidates, dtype=np.int64)
        extra = extra[(extra >= 0) & (extra < n)]
        parts.append(extra[~banned[extra]])
    cand = np.unique(np.concatenate(parts))
    c = len(cand)
    # --- features
    x = np.zeros((c, len(FEATURE_NAMES)), dtype=np.float32)
    col = _COLUMN
    if cf_all is not None:
        x[:, col["cf_score"]] = cf_all[cand]
    x[:, col["cf_rank"]] = _pool_ranks(cand, cf_ids, cfg.k_cf + 1)
    x[:, col["cooc_score"]] = _lookup(nb_ids, nb_sum, cand)
    # the best single contribution and the history item behind it, read for the pool only
    best, best_src = _best_contribution(history, side.nbr_ids, side.nbr_scores, cand)
    x[:, col["cooc_max"]] = best
    x[:, col["cooc_rank"]] = _pool_ranks(cand, cooc_ids, cfg.k_cooc + 1)
    because = np.where(best_src >= 0, history[np.maximum(best_src, 0)] if len(history) else -1, -1).astype(np.int64)
    r_ids, r_sum, _, _ = neighbour_scores(recent, side.nbr_ids, side.nbr_scores, with_best=False)
    if len(r_ids):
        rpos = np.clip(np.searchsorted(r_ids, cand), 0, len(r_ids) - 1)
        x[:, col["cooc_recent"]] = np.where(r_ids[rpos] == cand, r_sum[rpos], 0.0)
    if side.nbr_all_ids is not None and len(exclude):  # everything the user touched (+ exclusions)
        a_ids, a_sum, _, _ = neighbour_scores(exclude, side.nbr_all_ids, side.nbr_all_scores, with_best=False)
        if len(a_ids):
            apos = np.clip(np.searchsorted(a_ids, cand), 0, len(a_ids) - 1)
            x[:, col["cooc_all_score"]] = np.where(a_ids[apos] == cand, a_sum[apos], 0.0)
    # the candidates' content vectors, gathered once (~0.5 MB at 450 x 513) for the two similarity features
    cand_vecs = side.item_vectors[cand] if side.item_vectors is not None and len(history) else None
    if cb_all is not None:
        x[:, col["cb_score"]] = cb_all[cand]
        # no co-occurrence evidence: the most similar history item by content explains the pick
        missing = because < 0
        if missing.any() and len(history):
            sims = np.asarray(cand_vecs[missing] @ side.item_vectors[history].T)
            because[missing] = history[np.argmax(sims, axis=1)]
    x[:, col["cb_rank"]] = _pool_ranks(cand, cb_ids, cfg.k_cb + 1)
    x[:, col["knn_score"]] = _lookup(knn_ids_, knn_sum, cand)
    x[:, col["knn_rank"]] = _pool_ranks(cand, knn_top, cfg.k_knn + 1)
    x[:, col["covisit_score"]] = _lookup(cv_ids, cv_sum, cand)
    x[:, col["covisit_rank"]] = _pool_ranks(cand, cv_top, cfg.k_covisit + 1)
    x[:, col["trans_score"]] = _lookup(tr_ids, tr_sum, cand)
    x[:, col["trans_rank"]] = _pool_ranks(cand, tr_top, cfg.k_trans + 1)
    if len(history):
        l_ids, l_sum, _, _ = neighbour_scores(history[-1:], side.trans_ids, side.trans_scores, with_best=False)
        x[:, col["trans_last"]] = _lookup(l_ids, l_sum, cand)
        # how many steps back the history item behind the pick is (recency of the evidence)
        x[:, col["because_age"]] = _steps_back(history, because)
    else:
        x[:, col["because_age"]] = np.nan
    if cand_vecs is not None:
        sims = np.asarray(cand_vecs @ side.item_vectors[recent].T, dtype=np.float64)
        x[:, col["cb_last_sim"]] = sims[:, -1]
        x[:, col["cb_recent_max"]] = sims.max(axis=1)
    if len(history):
        cats = side.category_code[history]
        share = np.bincount(cats, minlength=int(side.category_code.max()) + 1) / len(history)
        x[:, col["category_affinity"]] = share[side.category_code[cand]]
    x[:, col["pop_short"]] = np.log1p(pop_short[cand])
    x[:, col["pop_long"]] = np.log1p(pop_long[cand])
    x[:, col["pop_rank"]] = _pool_ranks(cand, pop_ids, cfg.k_pop + 1)
    x[:, col["item_count"]] = np.log1p(side.item_count[cand])
    x[:, col["item_mean_rating"]] = side.item_mean_rating[cand]
    x[:, col["item_age_days"]] = (cutoff_s - side.created_s[cand]) / SECONDS_PER_DAY
    x[:, col["user_activity"]] = np.log1p(len(history))
    ctx = context or {}
    x[:, col["ctx_channel_share"]] = vocab_share(side.ctx_channel, side.channel_vocab, ctx.get("channel"), cand)
    x[:, col["ctx_device_share"]] = vocab_share(side.ctx_device, side.device_vocab, ctx.get("device_type"), cand)
    hb = hour_bucket(ctx.get("hour"))
    x[:, col["ctx_hour_share"]] = side.ctx_hour[cand, hb] if hb is not None else np.nan
    sources = {
        "cf": cf_ids,
        "cooccurrence": cooc_ids,
        "itemknn": knn_top,
        "covisit": cv_top,
        "transitions": tr_top,
        "cb": cb_ids,
        "popularity": pop_ids,
    }
    return UserCandidates(items=cand, features=x, because=because, sources=sources)


def source_matrix(uc: UserCandidates) -> np.ndarray:
    """``(c, len(SOURCES))`` bool: which retrievers put each candidate in the pool (for the ablation)."""
    out = np.zeros((len(uc.items), len(SOURCES)), dtype=bool)
    for j, name in enumerate(SOURCES):
        got = uc.sources.get(name)
        if got is not None and len(got):
            out[:, j] = np.isin(uc.items, got)
    return out


def vocab_share(table: np.ndarray, vocab: list[str], value: object, cand: np.ndarray) -> np.ndarray:
    if value is None or str(value) not in vocab:
        return np.full(len(cand), np.nan, dtype=np.float32)
    return np.asarray(table[cand, vocab.index(str(value))], dtype=np.float32)


def group_contributions(contrib: np.ndarray) -> dict[str, np.ndarray]:
    """LightGBM ``pred_contrib`` (c, F+1) -> per-component sums (the bias is spread over none)."""
    out = {comp: np.zeros(len(contrib), dtype=np.float64) for comp in COMPONENTS}
    for i, (_, comp) in enumerate(FEATURES):
        out[comp] += contrib[:, i]
    return out
