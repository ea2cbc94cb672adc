"""The hybrid ranker: candidates from several retrievers, re-ranked by LightGBM lambdarank.

Why two stages on two time windows: a ranker that learns its labels from the same interactions
the retrievers were fitted on only learns "the retriever remembers the past". So the train set is
split per user in time: retrievers (CF factors, item co-occurrence neighbours, content vectors,
popularity) are fitted on the earlier part, the ranker learns which of their candidates the user
went on to like in the later part; then the retrievers are refitted on all of train for scoring
and serving (ARCHITECTURE §4 "train_hybrid on a later time window").

Everything the served model needs scales with the catalogue linearly: CF factors (n x d), content
vectors (n x e), a sparse top-k neighbour table (n x k) and per-item statistics; see
:mod:`smartreco.models.hybrid_features` for the features (shared with serving).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask
from smartreco.models import hybrid_features as F
from smartreco.models import served
from smartreco.models.base import InteractionMatrix, Recommender, TrainData
from smartreco.models.item_stats import device_vocabulary, frame_batches, item_event_stats

LOW_SCORE = -1.0e6  # non-candidates: below every ranker score, ordered among themselves by popularity


@dataclass
class HybridConfig:
    """Hyper-parameters (logged to MLflow); defaults were chosen on a validation split of train."""

    label_fraction: float = 0.2  # later share of each user's train events the ranker learns labels from
    min_user_events: int = 5  # users with fewer train events give no labels (all history)
    n_factors: int = served.CF_FACTORS  # CF rank (Lightning MF or PureSVD)
    nbr_k: int = 100  # neighbours per item in the co-occurrence table
    nbr_method: str = "auto"  # cosine co-occurrence | ease (pruned EASE) | auto = ease up to ease_max_items
    nbr_shrink: float = 10.0
    ease_lambda: float = 400.0
    ease_max_items: int = 20_000  # pruned EASE only up to this many active items (dense Gram at training)
    all_interactions_table: bool = True  # a 2nd neighbour table over all interactions (a feature)
    cf_backend: str = "lightning"  # lightning (smartreco.models.cf MF, served) | svd (PureSVD, exact fold-in)
    cf_train_on: str = served.CF_TRAIN_ON  # lightning: positives | all | auto (validation; a given CF model's wins)
    cf_max_epochs: int = served.CF_MAX_EPOCHS  # lightning: epoch cap of the windows' early-stopped fit
    content: str = served.CONTENT_ENCODER  # content encoder (smartreco.models.content.content_encoder) | hashed
    cb_dims: int = 256  # hashed content vector size when no content model is given
    k_cf: int = 100
    k_cooc: int = 100
    k_cb: int = 30
    k_pop: int = 30
    k_knn: int = 40  # item-kNN (cosine over all interactions) from the whole history
    k_covisit: int = 40  # the same table from the last items, recency-weighted
    k_trans: int = 40  # next-item transitions from the last items, recency-weighted
    trans_window: int = 3  # a transition a -> b counts b up to this many positives after a (weight 1/2^gap)
    trans_shrink: float = 10.0
    n_folds: int = 2  # temporal folds cut from the training window the ranker learns from (1 = one fold)
    graded_labels: bool = True  # ratings 4 / 4.5 / 5 -> relevance 1 / 2 / 3 (other positives 1)
    n_estimators: int = 600
    learning_rate: float = 0.03
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    valid_fraction: float = 0.2  # label users held out for early stopping
    patience: int = 100  # early-stopping rounds (the validation curve is noisy with a few hundred users)
    seed: int = 7
    threads: int = 1  # LightGBM threads: OpenMP spin-waits badly on a busy 2-core machine
    lgb_params: dict = field(default_factory=dict)

    def candidates(self) -> F.CandidateConfig:
        return F.CandidateConfig(
            k_cf=self.k_cf, k_cooc=self.k_cooc, k_cb=self.k_cb, k_pop=self.k_pop,
            k_knn=self.k_knn, k_covisit=self.k_covisit, k_trans=self.k_trans,
        )


# ------------------------------------------------------------------------------------ retrievers
def neighbour_table(
    x: sp.csr_matrix, k: int, method: str = "cosine", shrink: float = 10.0, ease_lambda: float = 400.0
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item neighbours as ``(n_items, k)`` ids (-1 padded) and scores; never kept dense.

    ``cosine``: shrunk cosine of the item co-occurrence counts (sparse, scales with the data).
    ``ease``: rows of the EASE weight matrix (Steck 2019) pruned to top-k; needs a dense Gram at
    *training* time, so it is only for catalogues up to ``ease_max_items``; serving is the same table.
    """
    x = sp.csr_matrix(x, dtype=np.float32)
    n = x.shape[1]
    if method == "ease":
        return _ease_table(x, k, ease_lambda)
    co = (x.T @ x).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    deg = np.asarray(x.sum(axis=0)).ravel()
    co = co.tocoo()
    data = co.data / (np.sqrt(deg[co.row] * deg[co.col]) + shrink)
    return sparse_top_k_table(sp.csr_matrix((data, (co.row, co.col)), shape=(n, n)), k)


def sparse_top_k_table(co: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row of a sparse ``(n, n)`` score matrix pruned to its top-k: ``(n, k)`` ids (-1 padded), scores."""
    co = sp.csr_matrix(co)
    n = co.shape[0]
    ids = np.full((n, k), -1, dtype=np.int32)
    sc = np.zeros((n, k), dtype=np.float32)
    for i in range(n):  # one pass over sparse rows; O(nnz) overall
        lo, hi = co.indptr[i], co.indptr[i + 1]
        if hi == lo:
            continue
        row_ids, row_sc = F.top_k(co.data[lo:hi], k, ids=co.indices[lo:hi])
        ids[i, : len(row_ids)] = row_ids
        sc[i, : len(row_ids)] = row_sc
    return ids, sc


def transition_table(
    histories: dict[int, np.ndarray], n_items: int, k: int, window: int = 3, shrink: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Next-item transitions: ``b`` counts after ``a`` when it comes 1..``window`` positives later in a
    user's time-ordered history (weight ``2**-(gap-1)``), normalised by ``a``'s outgoing weight + shrink;
    pruned to top-k per item. Read from the *same* histories the serving request sends, so the
    sequence retriever sees offline exactly what it sees online."""
    seqs = [np.asarray(h, dtype=np.int64) for h in histories.values() if len(h) > 1]
    if not seqs:
        return np.full((n_items, k), -1, dtype=np.int32), np.zeros((n_items, k), dtype=np.float32)
    items = np.concatenate(seqs)
    owner = np.repeat(np.arange(len(seqs)), [len(h) for h in seqs])
    src, dst, wt = [], [], []
    for gap in range(1, max(1, window) + 1):
        same = owner[:-gap] == owner[gap:]
        src.append(items[:-gap][same])
        dst.append(items[gap:][same])
        wt.append(np.full(int(same.sum()), 2.0 ** -(gap - 1)))
    src, dst, wt = np.concatenate(src), np.concatenate(dst), np.concatenate(wt)
    keep = src != dst
    co = sp.csr_matrix((wt[keep], (src[keep], dst[keep])), shape=(n_items, n_items), dtype=np.float64)
    co.sum_duplicates()
    out = np.asarray(co.sum(axis=1)).ravel()
    co = sp.diags(1.0 / (out + shrink)) @ co
    return sparse_top_k_table(co.astype(np.float32), k)


def _ease_table(x: sp.csr_matrix, k: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """EASE over the items with a positive (the rest have no weights), each row pruned to top-k."""
    from scipy.linalg import lapack

    n = x.shape[1]
    active = np.flatnonzero(np.asarray((x != 0).sum(axis=0)).ravel() > 0)
    ids = np.full((n, k), -1, dtype=np.int32)
    sc = np.zeros((n, k), dtype=np.float32)
    if len(active) < 2:
        return ids, sc
    xa = x[:, active]
    g = (xa.T @ xa).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    factor, info = lapack.dpotrf(g, lower=False, overwrite_a=True)
    if info == 0:
        p, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"hybrid: EASE Gram matrix not positive definite (info={info})")
    p = np.triu(p)
    p = p + np.triu(p, 1).T
    b = (p / -np.diag(p)[None, :]).astype(np.float32)
    del p, g
    b[np.diag_indices_from(b)] = 0.0
    kk = min(k, len(active) - 1)
    top = np.argpartition(-b, kk - 1, axis=1)[:, :kk]
    val = np.take_along_axis(b, top, axis=1)
    order = np.argsort(-val, axis=1, kind="stable")
    top, val = np.take_along_axis(top, order, 1), np.take_along_axis(val, order, 1)
    keep = val > 0
    ids[active, :kk] = np.where(keep, active[top], -1)
    sc[active, :kk] = np.where(keep, val, 0.0)
    return ids, sc


def svd_factors(x: sp.csr_matrix, k: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """PureSVD (Cremonesi 2010): item factors V; a user is the sum of V over their positives, so
    fold-in of an unseen user is exact and cheap (the same formula)."""
    from scipy.sparse.linalg import svds

    x = sp.csr_matrix(x, dtype=np.float32)
    k = max(1, min(k, min(x.shape) - 1))
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(min(x.shape)).astype(np.float32)
    _, _, vt = svds(x, k=k, v0=v0)
    items = np.ascontiguousarray(vt.T, dtype=np.float32)
    users = np.asarray(x @ items, dtype=np.float32)
    return users, items


def hashed_content_vectors(items: pd.DataFrame, dims: int = 256) -> np.ndarray:
    """Content vectors from category/tags/title words hashed into ``dims`` buckets, TF-IDF weighted,
    L2-normalised: numpy only and O(n); the MiniLM encoder replaces it when available."""

    def tokens(row_tags: object, cat: str, sub: str) -> list[str]:
        toks = [f"c:{cat}".lower(), f"s:{sub}".lower()]
        if isinstance(row_tags, (list, tuple, np.ndarray)):
            toks += [f"t:{t}".lower() for t in row_tags]
        return toks

    subs = items[C.SUBCATEGORY] if C.SUBCATEGORY in items else pd.Series("", index=items.index)
    toks = [tokens(t, c, s) for t, c, s in zip(items[C.TAGS], items[C.CATEGORY], subs, strict=True)]
    lengths = np.fromiter((len(t) for t in toks), dtype=np.int64, count=len(toks))
    flat = pd.Series([t for ts in toks for t in ts], dtype=object)
    rows = np.repeat(np.arange(len(items)), lengths)
    codes, uniq = pd.factorize(flat)
    buckets = np.fromiter((_stable_hash(u) % dims for u in uniq), dtype=np.int64, count=len(uniq))
    df = np.bincount(codes, minlength=len(uniq))
    idf = np.log((1 + len(items)) / (1 + df)) + 1.0
    m = sp.csr_matrix((idf[codes], (rows, buckets[codes])), shape=(len(items), dims), dtype=np.float32)
    m.sum_duplicates()
    dense = m.toarray()
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return (dense / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _stable_hash(s: str) -> int:
    import zlib

    return zlib.crc32(s.encode("utf-8"))


# --------------------------------------------------------------------------------- item statistics
def item_side(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    positives: sp.csr_matrix,
    cfg: HybridConfig,
    item_vectors: np.ndarray | None,
    item_factors: np.ndarray | None,
    item_bias: np.ndarray | None = None,
) -> F.ItemSide:
    """The catalogue-aligned arrays of :class:`ItemSide`, from one window of interactions."""
    index = pd.Index(items[C.ITEM_ID].to_numpy())
    n = len(index)
    col = index.get_indexer(interactions[C.ITEM_ID])
    created = items[C.CREATED_DATE] if C.CREATED_DATE in items else pd.Series(pd.NaT, index=items.index)
    created_s = (pd.to_datetime(created, utc=True).astype("int64") / 1e9).to_numpy(dtype=np.float64)
    created_s[pd.isna(created).to_numpy()] = np.nan
    cats, _ = pd.factorize(items[C.CATEGORY].astype(str))
    # the statistics come from the one builder the 10M path streams through (smartreco.models.item_stats)
    channel_vocab = list(C.CHANNELS)
    device_vocab = device_vocabulary(interactions[C.DEVICE_TYPE]) if C.DEVICE_TYPE in interactions else []
    end_s = float(interactions[C.TIMESTAMP].max().value // 1_000_000_000) + 1.0 if len(interactions) else 0.0
    stats = item_event_stats(frame_batches(interactions, col), n, end_s, channel_vocab, device_vocab)
    n_active = int((np.asarray((positives != 0).sum(axis=0)).ravel() > 0).sum())
    nbr_method = cfg.nbr_method
    if nbr_method == "auto" or (nbr_method == "ease" and n_active > cfg.ease_max_items):
        nbr_method = "ease" if n_active <= cfg.ease_max_items else "cosine"
    nbr_ids, nbr_scores = neighbour_table(positives, cfg.nbr_k, nbr_method, cfg.nbr_shrink, cfg.ease_lambda)
    nbr_all_ids = nbr_all_scores = None
    if cfg.all_interactions_table:
        everything = InteractionMatrix.build(interactions, index.to_numpy(), positives_only=False).matrix
        nbr_all_ids, nbr_all_scores = neighbour_table(
            everything, cfg.nbr_k, nbr_method, cfg.nbr_shrink, cfg.ease_lambda
        )
    return F.ItemSide(
        item_factors=item_factors,
        item_bias=item_bias,
        item_vectors=item_vectors,
        nbr_ids=nbr_ids,
        nbr_all_ids=nbr_all_ids,
        nbr_all_scores=nbr_all_scores,
        nbr_scores=nbr_scores,
        category_code=cats.astype(np.int32),
        item_count=stats["item_count"],
        item_mean_rating=stats["item_mean_rating"],
        created_s=created_s,
        ctx_channel=stats["ctx_channel"],
        ctx_device=stats["ctx_device"],
        ctx_hour=stats["ctx_hour"],
        channel_vocab=channel_vocab,
        device_vocab=device_vocab,
    )


@dataclass
class EventIndex:
    """Sorted ``item * span + seconds`` keys: popularity in any window before any cutoff, vectorised."""

    keys: np.ndarray
    span: int
    t0: int

    @classmethod
    def build(cls, interactions: pd.DataFrame, item_index: pd.Index) -> EventIndex:
        col = item_index.get_indexer(interactions[C.ITEM_ID])
        sec = interactions[C.TIMESTAMP].astype("int64").to_numpy() // 1_000_000_000
        ok = col >= 0
        t0 = int(sec.min()) - 10 * 366 * 86_400 if len(sec) else 0
        span = int(sec.max() - t0) + 20 * 366 * 86_400 if len(sec) else 1
        keys = np.sort(col[ok].astype(np.int64) * span + (sec[ok] - t0))
        return cls(keys=keys, span=span, t0=t0)

    def counts(self, n_items: int, cutoff_s: float, days: float) -> np.ndarray:
        return F.window_counts(self.keys, self.span, np.arange(n_items), cutoff_s - self.t0, days)


# ------------------------------------------------------------------------------------- the model
@dataclass
class _Window:
    """Retrievers and statistics fitted on one window of interactions."""

    side: F.ItemSide
    user_factors: np.ndarray
    events: EventIndex
    histories: dict[int, np.ndarray]  # user row -> positive item indices, oldest first
    seen: dict[int, np.ndarray]  # user row -> every item index interacted with
    last_ts: np.ndarray  # (n_users,) seconds of the last event, nan if none
    last_context: dict[int, dict]


class HybridRanker(Recommender):
    """CF + co-occurrence + content + popularity candidates, LightGBM lambdarank on a later window."""

    name = "hybrid"

    def __init__(
        self,
        config: HybridConfig | None = None,
        content_encoder: Callable[[pd.DataFrame], np.ndarray] | None = None,
        progress: bool = True,
        cf_model=None,
    ):
        self.config = config or HybridConfig()
        self.content_encoder = content_encoder
        #: a trained CF model (:class:`~smartreco.models.serving_math.CFArtifacts`, e.g. train_cf's output)
        #: served as the final window's CF instead of a refit; the earlier window is still fitted here
        self.cf_model = cf_model
        self.progress = progress
        self.booster = None
        self.fit_info: dict = {}

    def params(self) -> dict:
        p = asdict(self.config)
        if self.content_encoder is not None:
            p["content"] = getattr(self.content_encoder, "__name__", "custom")
        if self.cf_model is not None:
            meta = self.cf_model.meta
            p["cf_model"] = {k: v for k, v in meta.items() if isinstance(v, (str, int, float))}
            if isinstance(meta.get("params"), dict):  # its own recipe (factors, epoch cap, ...): what a
                # re-evaluation of this bundle refits (smartreco.evaluation.run.recipe_cf)
                p["cf_model"]["params"] = {k: v for k, v in meta["params"].items()
                                           if v is None or isinstance(v, (str, int, float))}
        return p

    # ----------------------------------------------------------------------------- fitting
    def fit(self, data: TrainData) -> HybridRanker:
        from smartreco.evaluation.split import validation_split

        cfg = self.config
        self.items = data.items.reset_index(drop=True)
        self.item_ids = data.matrix.item_ids
        self.user_ids = data.matrix.user_ids
        self.item_index = pd.Index(self.item_ids)
        self.user_index = pd.Index(self.user_ids)
        inter = data.interactions.sort_values([C.USER_ID, C.TIMESTAMP, C.ITEM_ID], kind="stable")
        self._cf_choice = None  # set by the first Lightning CF fit (see _fit_cf)
        given_cf = self._given_cf()  # checked before any fitting: a CF model for other items is an error
        if self.content_encoder is None:
            from smartreco.models.content import content_encoder

            self.content_encoder = content_encoder(cfg.content, dims=cfg.cb_dims)
        encoder = self.content_encoder
        self.item_vectors = np.ascontiguousarray(encoder(self.items), dtype=np.float32)
        # retrievers on the earlier part of each user's train, ranker labels from the later part; with
        # n_folds > 1 the cut is repeated inside the earlier part, so the ranker sees more labelled groups
        folds, rest = [], inter
        for _ in range(max(1, cfg.n_folds)):
            inner = validation_split(rest, cfg.label_fraction, cfg.min_user_events)
            if inner.test.empty:
                break
            early = self._fit_window(inner.train)
            folds.append(self._ranking_rows(early, inner.test))
            del early
            rest = inner.train
        if not folds:
            from smartreco.errors import DataError

            raise DataError("hybrid: no user has enough train events to cut a label window")
        x, y, groups, users, src = (np.concatenate([f[i] for f in folds]) for i in range(5))
        if getattr(self, "keep_ranking_rows", False):  # the ablation retrains the ranker on subsets
            fold = np.concatenate([np.full(len(f[1]), i, dtype=np.int8) for i, f in enumerate(folds)])
            self.ranking_rows = {"x": x, "y": y, "groups": groups, "users": users, "sources": src, "fold": fold}
        self.booster, self.fit_info = _train_ranker(x, y, groups, users, cfg)
        self.fit_info["folds"] = len(folds)
        # retrievers refitted on all of train for scoring and serving (the given CF model when there is one)
        self.window = self._fit_window(inter, cf=given_cf)
        self.data_end_s = float(inter[C.TIMESTAMP].max().value // 1_000_000_000) + 1.0
        n = len(self.item_ids)
        self.pop_end = (
            self.window.events.counts(n, self.data_end_s, F.POP_SHORT_DAYS),
            self.window.events.counts(n, self.data_end_s, F.POP_LONG_DAYS),
        )
        return self

    def _fit_cf(self, inter: pd.DataFrame, pos: sp.csr_matrix) -> tuple:
        """(user factors, item factors, item bias or None) of the window, by ``cf_backend``."""
        cfg = self.config
        if cfg.cf_backend == "lightning":
            from smartreco.models.cf import CFConfig, CFRecommender

            # the first (earlier) window picks train_on and the epoch count on its validation split; later
            # windows refit with that choice and no validation (a third of the Lightning fits)
            # with a given (served) CF model, the windows refit ITS recipe: factors, epoch cap, train_on
            given = self.cf_model.meta if self.cf_model is not None else {}
            recipe = given.get("params", {})
            dim = int(recipe.get("dim", cfg.n_factors))
            choice = getattr(self, "_cf_choice", None)
            if choice is None:
                config = CFConfig(dim=dim, seed=cfg.seed, progress=False,
                                  max_epochs=int(recipe.get("max_epochs", cfg.cf_max_epochs)),
                                  train_on=str(given.get("train_on", cfg.cf_train_on)))
                model = CFRecommender(config)
            else:
                config = CFConfig(dim=dim, seed=cfg.seed, progress=False, train_on=choice[0], max_epochs=choice[1])
                model = CFRecommender(config, validate=False)
            model.fit(
                TrainData(
                    interactions=inter,
                    items=self.items,
                    matrix=InteractionMatrix(self.user_ids, self.item_ids, pos),
                )
            )
            if choice is None:
                self._cf_choice = (model.train_on, max(1, int(model.best_epoch or config.max_epochs)))
            return model.factors()
        if cfg.cf_backend != "svd":
            from smartreco.errors import DataError

            raise DataError(f"hybrid.cf_backend: expected 'svd' or 'lightning', got {cfg.cf_backend!r}")
        user_f, item_f = svd_factors(pos, cfg.n_factors, cfg.seed)
        return user_f, item_f, np.zeros(len(item_f), dtype=np.float32)  # PureSVD has no bias (train_cf's layout)

    @property
    def fold_in(self) -> str:
        """How an unseen user's CF vector is built from history (matches the CF backend)."""
        return "sum" if self.config.cf_backend == "svd" else "ls"

    def _given_cf(self) -> tuple | None:
        """The given CF model's (user factors, item factors, item bias) aligned to this model's ids;
        users or items it never saw get zero rows (fold-in / no CF evidence)."""
        m = self.cf_model
        if m is None:
            return None
        if self.config.cf_backend != "lightning":
            from smartreco.errors import DataError

            raise DataError(f"hybrid: a trained CF model was given but cf_backend is {self.config.cf_backend!r}")
        users = pd.Index(m.user_ids).get_indexer(pd.Index(self.user_ids).astype(str))
        items = pd.Index(m.item_ids).get_indexer(pd.Index(self.item_ids).astype(str))
        if (items < 0).all():
            from smartreco.errors import DataError

            raise DataError("hybrid: the given CF model shares no item id with the training data")

        def aligned(src: np.ndarray, rows: np.ndarray) -> np.ndarray:
            out = np.zeros((len(rows), *np.shape(src)[1:]), dtype=np.float32)
            out[rows >= 0] = np.asarray(src, dtype=np.float32)[rows[rows >= 0]]
            return out

        return aligned(m.user_factors, users), aligned(m.item_factors, items), aligned(m.item_bias, items)

    def _fit_window(self, inter: pd.DataFrame, cf: tuple | None = None) -> _Window:
        cfg = self.config
        pos = InteractionMatrix.build(inter, self.item_ids, self.user_ids, positives_only=True).matrix
        user_f, item_f, item_b = cf if cf is not None else self._fit_cf(inter, pos)
        side = item_side(inter, self.items, pos, cfg, self.item_vectors, item_f, item_b)
        events = EventIndex.build(inter, self.item_index)
        rows = self.user_index.get_indexer(inter[C.USER_ID])
        cols = self.item_index.get_indexer(inter[C.ITEM_ID])
        is_pos = positive_mask(inter).to_numpy()
        frame = pd.DataFrame({"r": rows, "c": cols, "p": is_pos})
        frame = frame[(frame["r"] >= 0) & (frame["c"] >= 0)]
        histories = {int(r): g["c"].to_numpy()[g["p"].to_numpy()] for r, g in frame.groupby("r", sort=False)}
        histories = {
            r: pd.unique(h[::-1])[::-1] for r, h in histories.items()
        }  # keep each item's last position
        seen = {int(r): np.unique(g.to_numpy()) for r, g in frame.groupby("r", sort=False)["c"]}
        self._add_sequence_tables(side, inter, histories)
        last = inter.groupby(C.USER_ID)[C.TIMESTAMP].max()
        last_ts = np.full(len(self.user_ids), np.nan)
        idx = self.user_index.get_indexer(last.index)
        last_ts[idx[idx >= 0]] = (last.astype("int64").to_numpy()[idx >= 0] // 1_000_000_000).astype(float)
        last_rows = inter.groupby(C.USER_ID).tail(1)
        last_context = {
            int(r): _context_of(row)
            for r, row in zip(
                self.user_index.get_indexer(last_rows[C.USER_ID]),
                last_rows.itertuples(index=False),
                strict=True,
            )
        }
        return _Window(
            side=side,
            user_factors=user_f,
            events=events,
            histories=histories,
            seen=seen,
            last_ts=last_ts,
            last_context=last_context,
        )

    def _add_sequence_tables(self, side: F.ItemSide, inter: pd.DataFrame, histories: dict) -> None:
        """The item-kNN (cosine over all interactions) and next-item transition tables of a window."""
        cfg = self.config
        everything = InteractionMatrix.build(inter, self.item_ids, positives_only=False).matrix
        side.knn_ids, side.knn_scores = neighbour_table(everything, cfg.nbr_k, "cosine", cfg.nbr_shrink)
        side.trans_ids, side.trans_scores = transition_table(
            histories, len(self.item_ids), cfg.nbr_k, cfg.trans_window, cfg.trans_shrink
        )

    def _ranking_rows(self, w: _Window, label_part: pd.DataFrame) -> tuple:
        """Candidates + features per label user, label = a positive in the user's later window
        (graded by rating when ``graded_labels``); also which retrievers produced each row."""
        cand_cfg = self.config.candidates()
        labels = label_part[positive_mask(label_part)].copy()
        labels["_grade"] = relevance_grades(labels) if self.config.graded_labels else 1.0
        first = label_part.groupby(C.USER_ID).head(1)
        ctx_by_user = {
            u: _context_of(row)
            for u, row in zip(first[C.USER_ID], first.itertuples(index=False), strict=True)
        }
        xs, ys, groups, users, srcs = [], [], [], [], []
        grouped = labels.groupby(C.USER_ID)
        for uid, lab in tqdm(grouped, desc="hybrid: ranking rows", disable=not self.progress):
            r = int(self.user_index.get_loc(uid))
            hist = w.histories.get(r, np.empty(0, dtype=np.int64))
            cutoff = (w.last_ts[r] + 1.0) if np.isfinite(w.last_ts[r]) else float("nan")
            if not np.isfinite(cutoff):
                continue
            uc = self._candidates(w, r, hist, cutoff, ctx_by_user.get(uid, {}), cand_cfg)
            target = self.item_index.get_indexer(lab[C.ITEM_ID].to_numpy())
            grade = pd.Series(lab["_grade"].to_numpy(), index=target).groupby(level=0).max()
            y = grade.reindex(uc.items).fillna(0.0).to_numpy(dtype=np.float32)
            if y.sum() == 0 or len(y) < 2:
                continue
            xs.append(uc.features)
            ys.append(y)
            groups.append(len(y))
            users.append(np.full(len(y), r))
            srcs.append(F.source_matrix(uc))
        if not xs:
            from smartreco.errors import DataError

            raise DataError(
                "hybrid: no user has a positive in the later window; need more interactions per user"
            )
        return np.vstack(xs), np.concatenate(ys), np.asarray(groups), np.concatenate(users), np.vstack(srcs)

    def _candidates(
        self,
        w: _Window,
        row: int,
        hist: np.ndarray,
        cutoff: float,
        context: dict,
        cand_cfg: F.CandidateConfig,
    ) -> F.UserCandidates:
        n = len(self.item_ids)
        pop_s = w.events.counts(n, cutoff, F.POP_SHORT_DAYS)
        pop_l = w.events.counts(n, cutoff, F.POP_LONG_DAYS)
        user_vec = w.user_factors[row]
        return F.candidate_features(
            w.side,
            hist,
            user_vec,
            pop_s,
            pop_l,
            cutoff,
            context,
            w.seen.get(row, np.empty(0, dtype=np.int64)),
            cand_cfg,
        )

    # ----------------------------------------------------------------------------- scoring
    def user_candidates(
        self, row: int, cutoff: float | None = None, context: dict | None = None
    ) -> F.UserCandidates:
        """The final model's candidate pool + features for a train user (default: their own cutoff)."""
        w = self.window
        hist = w.histories.get(row, np.empty(0, dtype=np.int64))
        if cutoff is None:
            cutoff = (w.last_ts[row] + 1.0) if np.isfinite(w.last_ts[row]) else self.data_end_s
        ctx = w.last_context.get(row, {}) if context is None else context
        return self._candidates(w, row, hist, cutoff, ctx, self.config.candidates())

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        n = len(self.item_ids)
        base = (LOW_SCORE + np.log1p(self.pop_end[1])).astype(np.float32)
        out = np.tile(base, (len(user_rows), 1))
        for i, r in enumerate(tqdm(np.asarray(user_rows), desc="hybrid: scoring", disable=not self.progress)):
            uc = self.user_candidates(int(r))
            if len(uc.items):
                out[i, uc.items] = self.booster.predict(uc.features, num_threads=1)
        assert out.shape == (len(user_rows), n)
        return out

    # ----------------------------------------------------------------------------- serving
    def bundle_parts(self, meta: dict | None = None) -> dict:
        """Everything :func:`smartreco.serving.bundle.save_bundle` writes (and the runtime reads)."""
        w, side = self.window, self.window.side
        cat = self.items[[C.ITEM_ID, C.TITLE, C.CATEGORY]].copy()
        cat[C.ITEM_ID] = cat[C.ITEM_ID].astype(str)
        cat["popularity"] = self.pop_end[1]
        cat["pop_short"] = self.pop_end[0]
        cat["item_count"] = side.item_count
        cat["mean_rating"] = side.item_mean_rating
        arrays = {
            "cf_user_factors": w.user_factors,
            "cf_item_factors": side.item_factors,
            "cf_item_bias": side.item_bias,
            "cb_item_vectors": side.item_vectors,
            "nbr_ids": side.nbr_ids,
            "nbr_scores": side.nbr_scores,
            "nbr_all_ids": side.nbr_all_ids,
            "nbr_all_scores": side.nbr_all_scores,
            "knn_ids": side.knn_ids,
            "knn_scores": side.knn_scores,
            "trans_ids": side.trans_ids,
            "trans_scores": side.trans_scores,
            "category_code": side.category_code,
            "item_count": side.item_count,
            "item_mean_rating": side.item_mean_rating,
            "created_s": side.created_s,
            "ctx_channel": side.ctx_channel,
            "ctx_device": side.ctx_device,
            "ctx_hour": side.ctx_hour,
            "pop_short": self.pop_end[0],
            "pop_long": self.pop_end[1],
        }
        manifest_meta = {
            "candidates": asdict(self.config.candidates()),
            "data_end_s": self.data_end_s,
            "fold_in": self.fold_in,
            "channel_vocab": side.channel_vocab,
            "device_vocab": side.device_vocab,
            "params": self.params(),
            "fit_info": self.fit_info,
            **(meta or {}),
        }
        return {
            "catalogue": cat,
            "user_ids": self.user_ids,
            "arrays": arrays,
            "ranker_text": self.booster.model_to_string(),
            "meta": manifest_meta,
        }

    def save_bundle(self, path, *, meta: dict | None = None, extra_files: dict | None = None):
        """Write the serving bundle (manifest + parquet + npy + LightGBM text); returns its path."""
        from smartreco.serving.bundle import save_bundle

        return save_bundle(path, kind="hybrid", extra_files=extra_files, **self.bundle_parts(meta))

    def runtime(self):
        """The serving runtime over the in-memory arrays (no disk round trip), e.g. for tests."""
        from smartreco.serving.bundle import ModelBundle

        parts = self.bundle_parts()
        manifest = {"kind": "hybrid", **parts["meta"]}
        return ModelBundle.from_parts(
            manifest,
            parts["catalogue"],
            parts["user_ids"],
            {k: v for k, v in parts["arrays"].items() if v is not None},
            parts["ranker_text"],
        )

    def contributions(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Per-component SHAP contributions (LightGBM ``pred_contrib``) for feature rows."""
        return F.group_contributions(self.booster.predict(features, pred_contrib=True, num_threads=1))

    def feature_importance(self) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(F.FEATURE_NAMES, gain, strict=True)}


def _context_of(row: object) -> dict:
    """Context (channel, device, hour) of one interaction row (a namedtuple)."""
    ts = getattr(row, C.TIMESTAMP, None)
    return {
        "channel": getattr(row, C.CHANNEL, None),
        "device_type": getattr(row, C.DEVICE_TYPE, None),
        "hour": int(ts.hour) if ts is not None and not pd.isna(ts) else None,
    }


def relevance_grades(positives: pd.DataFrame) -> np.ndarray:
    """Graded relevance of positive events: a rating of 4 / 4.5 / 5 -> 1 / 2 / 3; any other positive 1."""
    if C.RATING not in positives:
        return np.ones(len(positives))
    r = positives[C.RATING].to_numpy(dtype=np.float64)
    graded = 1.0 + (r >= 4.5) + (r >= 5.0)
    return np.where(np.isnan(r), 1.0, graded)


def train_ranker(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    users: np.ndarray,
    cfg: HybridConfig,
    names: list[str] | None = None,
    rounds: int | None = None,
) -> tuple:
    """LightGBM lambdarank: early-stopped on held-out label users, then refitted on all of them
    (``rounds`` given: no early-stopping probe, e.g. the ablation reuses the full model's count)."""
    import lightgbm as lgb

    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "ndcg_eval_at": [10],
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 20,
        "verbose": -1,
        "num_threads": cfg.threads,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        **cfg.lgb_params,
    }
    names = list(names or F.FEATURE_NAMES)
    group_user = users[np.r_[0, np.cumsum(groups)[:-1]]]
    uniq = np.unique(group_user)
    rng = np.random.default_rng(cfg.seed)
    n_valid = int(len(uniq) * cfg.valid_fraction)
    best, valid_ndcg = cfg.n_estimators, float("nan")
    if rounds is None and n_valid >= 1 and len(uniq) - n_valid >= 1:
        valid_users = rng.choice(uniq, size=n_valid, replace=False)
        g_valid = np.isin(group_user, valid_users)
        r_valid = np.repeat(g_valid, groups)
        tr = lgb.Dataset(x[~r_valid], y[~r_valid], group=groups[~g_valid], feature_name=names)
        va = lgb.Dataset(x[r_valid], y[r_valid], group=groups[g_valid], reference=tr)
        probe = lgb.train(
            params,
            tr,
            num_boost_round=cfg.n_estimators,
            valid_sets=[va],
            callbacks=[lgb.early_stopping(cfg.patience, verbose=False)],
        )
        best = int(probe.best_iteration or cfg.n_estimators)
        valid_ndcg = float(probe.best_score["valid_0"]["ndcg@10"])
    rounds = rounds or max(10, int(round(best * 1.1)))
    booster = lgb.train(params, lgb.Dataset(x, y, group=groups, feature_name=names), num_boost_round=rounds)
    info = {
        "label_users": int(len(uniq)),
        "ranking_rows": int(len(y)),
        "positive_rows": int((y > 0).sum()),
        "best_iteration": best,
        "rounds": rounds,
        "valid_ndcg@10": valid_ndcg,
    }
    return booster, info


_train_ranker = train_ranker
