"""What the Seldon graph nodes call at request time: candidates, ranking, explanations, diversity.

numpy/pandas/lightgbm only (imports in ``.venv-serving``). :class:`BundleRuntime` holds the arrays of a
bundle (see :mod:`smartreco.serving.bundle`) and exposes:

* ``cf_candidates(user_id, history, k, exclude)``: known user -> learned factors; unknown user with a
  history -> fold-in; neither -> ``{}``;
* ``cb_candidates(history, k, exclude)``: items closest to the history's content profile;
* ``popular(k, exclude, category=None)``: recent popularity (the same score the ranker's popularity
  retriever uses);
* ``rank(user_id, history, cf, cb, context, n, exclude, max_category_share)``: the LightGBM ranker over
  the union of the given candidates and the bundle's own retrievers, with per-component path attributions
  (:mod:`smartreco.models.path_attributions`), the history item behind each pick ("because you liked X"), a
  category cap and, for users with no history and no factors, a popularity + content cold start.

Every list respects ``exclude`` and never returns an item from the history.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.models import hybrid_features as F
from smartreco.models.path_attributions import LeafAttributions
from smartreco.models.serving_math import all_str, fold_in_user, history_rows, recency_weights, topk_blocked
from smartreco.retrieval.catalogue import IdIndex
from smartreco.serving.session_intent import (
    DEFAULT_SESSION_SHARE,
    SESSION_POOL_PER_CATEGORY,
    admit_session_categories,
    session_slots,
)


@dataclass
class RankedItem:
    """One recommendation as the hybrid node returns it."""

    item_id: str
    title: str
    category: str
    score: float
    rank: int
    confidence: float
    component_scores: dict[str, float] = field(default_factory=dict)
    because_item: str | None = None
    because_title: str | None = None
    #: placed by the session rule (:mod:`smartreco.serving.session_intent`): ``because_item`` is the live click
    session: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def diversify(categories: np.ndarray, n: int, max_share: float) -> np.ndarray:
    """Greedy top-n with at most ``floor(max_share * n)`` per category: positions into a score-ordered pool
    (``categories[p]`` is the category of the ``p``-th best item).

    When the pool runs out before ``n`` items the cap is relaxed for the rest (appended after the capped
    picks), so a list is only short when there are fewer than ``n`` admissible items at all. (Until session 9
    the loop walked ``order``'s values, pool indices, as if they were positions: the served list was not the
    ranker's top-n; ``tests/unit/test_serving_runtime_rank_paths.py`` now checks it is.)
    """
    if n <= 0 or len(categories) == 0:
        return np.empty(0, dtype=np.int64)
    cap = max(1, int(math.floor(max_share * n + 1e-9))) if max_share < 1 else n
    counts: dict[object, int] = {}
    picked, skipped = [], []
    for pos, cat in enumerate(categories):
        if counts.get(cat, 0) < cap:
            picked.append(pos)
            counts[cat] = counts.get(cat, 0) + 1
            if len(picked) == n:
                break
        else:
            skipped.append(pos)
    if len(picked) < n:
        picked.extend(skipped[: n - len(picked)])
    return np.asarray(picked, dtype=np.int64)


def row_lookup(index: object) -> dict[str, int] | None:
    """``{id: row}`` of a unique ``pd.Index`` (None otherwise: a compact catalogue's :class:`IdIndex` answers
    itself). A dict answers one id in ~0.1 us where ``pd.Index.get_indexer`` costs ~50 us of set-up per call,
    and a request makes ~20 such calls (~1.5 ms of CPU on the MovieLens bundle). Same rows: the ids are unique,
    which is when ``get_indexer`` answers at all."""
    if not isinstance(index, pd.Index) or not index.is_unique:
        return None
    return {k: i for i, k in enumerate(index)}  # the ids as stored: a str key matches what get_indexer matched


#: how many recent :meth:`BundleRuntime.rows` answers a runtime keeps (history + candidate ids of a request)
ROWS_MEMO = 4


def _history_key(hist: np.ndarray) -> bytes:
    """The key of the per-history memos (content scores, CB top list): one definition, so the list the CB part
    writes is found by the ranker that reads it."""
    return np.asarray(hist, dtype=np.int64).tobytes()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


class BundleRuntime:
    """Serving API over bundle arrays; :class:`smartreco.serving.bundle.ModelBundle` loads one from disk."""

    manifest: dict

    @classmethod
    def from_parts(
        cls,
        manifest: dict,
        catalogue: pd.DataFrame,
        user_ids: np.ndarray,
        arrays: Mapping[str, np.ndarray],
        ranker_text: str,
    ) -> BundleRuntime:
        import lightgbm as lgb

        self = cls.__new__(cls)
        self.manifest = manifest
        if isinstance(catalogue, pd.DataFrame):
            self.catalogue = catalogue.reset_index(drop=True)
            self.item_ids = self.catalogue[C.ITEM_ID].astype(str).to_numpy(dtype=object)
            self.item_index = pd.Index(self.item_ids)
            self.titles = self.catalogue[C.TITLE].astype(str).to_numpy(dtype=object)
            self.categories = self.catalogue[C.CATEGORY].astype(str).to_numpy(dtype=object)
        else:  # a CompactCatalogue: memory-mapped id/label arrays, no per-item Python objects (10M items)
            self.catalogue = catalogue
            self.item_ids = self.item_index = catalogue.item_index
            self.titles, self.categories = catalogue.titles, catalogue.categories
        if isinstance(user_ids, IdIndex):
            self.user_index = user_ids
        else:
            self.user_index = pd.Index(np.asarray(user_ids, dtype=object))
        self._item_rows, self._user_rows = row_lookup(self.item_index), row_lookup(self.user_index)
        a = dict(arrays)
        self.user_factors = a["cf_user_factors"]
        self.side = F.ItemSide(
            item_factors=a["cf_item_factors"],
            item_bias=a.get("cf_item_bias"),
            item_vectors=a["cb_item_vectors"],
            nbr_ids=a["nbr_ids"],
            nbr_scores=a["nbr_scores"],
            nbr_all_ids=a.get("nbr_all_ids"),
            nbr_all_scores=a.get("nbr_all_scores"),
            category_code=a["category_code"],
            item_count=a["item_count"],
            item_mean_rating=a["item_mean_rating"],
            created_s=a["created_s"],
            ctx_channel=a["ctx_channel"],
            ctx_device=a["ctx_device"],
            ctx_hour=a["ctx_hour"],
            channel_vocab=list(manifest.get("channel_vocab", [])),
            device_vocab=list(manifest.get("device_vocab", [])),
            knn_ids=a.get("knn_ids"),
            knn_scores=a.get("knn_scores"),
            trans_ids=a.get("trans_ids"),
            trans_scores=a.get("trans_scores"),
        )
        self.pop_short = np.asarray(a["pop_short"], dtype=np.float32)
        self.pop_long = np.asarray(a["pop_long"], dtype=np.float32)
        self.pop_score = self.pop_long + 3.0 * self.pop_short  # same as the ranker's popularity retriever
        self.cand_cfg = F.CandidateConfig(**manifest.get("candidates", {}))
        self.cutoff_s = float(manifest["data_end_s"])
        self.fold_in_method = str(manifest.get("fold_in", "sum"))
        self.booster = lgb.Booster(model_str=ranker_text)
        self._gram = None
        self._cf_index = self._cb_index = None
        #: saved retrieval index folders ({"cf": Path, "cb": Path}) opened memory-mapped instead of built
        self.index_dirs: dict = {}
        #: "auto": the ranker's retrievers go through the indexes when the catalogue is above the exact
        #: search size (or saved indexes exist); "dense": always the dense path; "indexed": always indexes
        self.retrieval = "auto"
        self._pop_order = None
        self._content_memo: tuple | None = None
        self._cb_top_memo: tuple | None = None
        self._rows_memo: tuple = ()
        return self

    @property
    def n_items(self) -> int:
        return int(len(self.item_ids))

    def uses_indexes(self) -> bool:
        """Whether ranking retrieves through the indexes (large catalogue) or scores densely (small)."""
        if self.retrieval != "auto":
            return self.retrieval == "indexed"
        from smartreco.retrieval import choose_index_kind

        return bool(self.index_dirs) or choose_index_kind(self.n_items) != "exact"

    @property
    def pop_order(self) -> np.ndarray:
        """The most popular rows by ``pop_score`` (ties by row), computed once: popularity at 10M items
        without a catalogue-wide top-k per request."""
        if self._pop_order is None:
            from smartreco.retrieval.candidates import popularity_order

            self._pop_order = popularity_order(self.pop_short, self.pop_long)
        return self._pop_order

    # candidate indexes: exact blocked matmul for small catalogues, faiss IVF above
    # smartreco.retrieval.choose_index_kind's threshold; built on first use so small bundles load fast
    @property
    def cf_index(self):
        if self._cf_index is None and "cf" in self.index_dirs:
            from smartreco.retrieval import load_index

            self._cf_index = load_index(self.index_dirs["cf"], mmap=True)
        if self._cf_index is None:
            from smartreco.retrieval import build_index

            bias = None if self.side.item_bias is None else np.asarray(self.side.item_bias, dtype=np.float32)
            self._cf_index = build_index(self.side.item_factors, bias)
        return self._cf_index

    @property
    def cb_index(self):
        if self._cb_index is None and "cb" in self.index_dirs:
            from smartreco.retrieval import load_index

            self._cb_index = load_index(self.index_dirs["cb"], mmap=True)
        if self._cb_index is None:
            from smartreco.retrieval import build_index

            self._cb_index = build_index(self.side.item_vectors)
        return self._cb_index

    # ------------------------------------------------------------------------------- helpers
    @property
    def version(self) -> str:
        return str(self.manifest.get("model_version") or self.manifest.get("created", "unknown"))

    def _user_row(self, user_id: str) -> int:
        if self._user_rows is not None:
            return self._user_rows.get(user_id, -1)
        return int(self.user_index.get_indexer([user_id])[0])

    def has_user(self, user_id: str | None) -> bool:
        """Whether CF has learned factors for this user (else fold-in / cold start)."""
        return user_id is not None and self._user_row(str(user_id)) >= 0

    def title(self, item_id: str) -> str:
        """Title of a catalogue item (the id itself when unknown)."""
        if self._item_rows is not None:
            r = self._item_rows.get(str(item_id), -1)
        else:
            r = self.item_index.get_indexer([str(item_id)])[0]
        return str(self.titles[r]) if r >= 0 else str(item_id)

    def rows(self, ids: Iterable[str] | None) -> np.ndarray:
        """Catalogue rows of item ids (order kept, unknown ids dropped).

        A request asks for the rows of its history ~4 times (CF node, CB node, the ranker's pool and its
        features): the last :data:`ROWS_MEMO` answers for lists/tuples of ``str`` ids are kept (``tuple(ids)``
        is the key: a few us where a 232-item history's look-ups cost ~40 us). Only exact ``str`` ids, since
        ``1 == 1.0 == True`` as keys while ``str()`` of each finds another row. The memo keeps its own read-only
        array and every caller gets a copy (a caller may write to its rows). The memo is replaced as a whole (a
        tuple), so a concurrent request only misses."""
        key = tuple(ids) if isinstance(ids, list | tuple) else None
        if key is not None and not all_str(key):
            key = None
        memo = getattr(self, "_rows_memo", ())
        if key is not None:
            for k, found in memo:
                if k == key:
                    return found.copy()
        found = self._lookup_rows(ids)
        if key is not None:
            kept = found.copy()
            kept.flags.writeable = False
            self._rows_memo = ((key, kept), *memo[: ROWS_MEMO - 1])
        return found

    def _lookup_rows(self, ids: Iterable[str] | None) -> np.ndarray:
        if isinstance(self.item_index, IdIndex):  # compact catalogue: one vectorised look-up
            found = self.item_index.get_indexer(list(ids or ()))
            return found[found >= 0].astype(np.int64)
        return history_rows(list(ids or ()), self._item_rows if self._item_rows is not None else self.item_index)

    def user_vector(self, user_id: str | None, history_rows_: np.ndarray) -> np.ndarray | None:
        """Known user -> learned factors; otherwise a fold-in from the history; None when neither."""
        if user_id is not None:
            r = self._user_row(str(user_id))
            vec = F.usable_vector(self.user_factors[r]) if r >= 0 else None
            if vec is not None:
                return vec
        if len(history_rows_) == 0:
            return None
        v = self.side.item_factors
        if self.fold_in_method == "sum":  # PureSVD: a user is the sum of their items' factors, exactly
            return np.asarray(v[np.unique(history_rows_)], dtype=np.float32).sum(axis=0)
        if self._gram is None:
            self._gram = np.asarray(v, dtype=np.float64).T @ np.asarray(v, dtype=np.float64)
        return fold_in_user(v, history_rows_, recency_weights(len(history_rows_)), gram=self._gram)

    def _as_dict(self, idx: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        keep = idx >= 0
        if isinstance(self.item_ids, IdIndex):  # decode the ids of the kept rows in one call
            return {str(i): float(s) for i, s in zip(self.item_ids[idx[keep]], scores[keep], strict=True)}
        # one gather and two tolist() calls instead of a numpy scalar per id and score: the same str ids (the
        # catalogue's ids are stored as str) and the same Python floats, ~0.3 us per entry less
        ids = self.item_ids[idx[keep]].tolist()
        return dict(zip(ids if all_str(ids) else map(str, ids), scores[keep].tolist(), strict=True))

    def _exclusions(self, history: np.ndarray, exclude: Iterable[str] | None) -> np.ndarray:
        return np.unique(np.concatenate([history, self.rows(exclude)])).astype(np.int64)

    # ------------------------------------------------------------------------------- retrievers
    def cf_candidates(
        self, user_id: str | None, history: list[str], k: int, exclude: set[str] | None = None
    ) -> dict[str, float]:
        hist = self.rows(history)
        u = self.user_vector(user_id, hist)
        if u is None or k <= 0:
            return {}
        ex = self._exclusions(hist, exclude)
        idx, sc = self.cf_index.search(u[None, :], int(k), exclude=[ex])
        return self._as_dict(idx[0], sc[0])

    def cb_candidates(self, history: list[str], k: int, exclude: set[str] | None = None) -> dict[str, float]:
        hist = self.rows(history)
        dense = self._dense_content()
        prof, row = self.content(hist) if dense else (F.user_profile(hist, self.side.item_vectors), None)
        if prof is None or k <= 0:
            return {}
        ex = [self._exclusions(hist, exclude)]
        if dense:  # the exact index's selection over the scores the ranker's features reuse
            idx, sc = topk_blocked(
                prof[None, :],
                self.cb_index.vectors,
                int(k),
                exclude=ex,
                products=row[None, :],
                block_size=int(self.cb_index.params.get("block_size", 65_536)),
            )
            # the ranker's content retriever reads its top k_cb from this list when it can (F.TopList): one entry,
            # replaced as a whole, keyed like the content memo
            top = F.TopList(excluded=ex[0], ids=idx[0].copy(), scores=sc[0].copy())
            self._cb_top_memo = (_history_key(hist), top)
        else:
            idx, sc = self.cb_index.search(prof[None, :], int(k), exclude=ex)
        return self._as_dict(idx[0], sc[0])

    def _dense_content(self) -> bool:
        """Whether content is scored densely (an exact index over the bundle's own vectors, no bias)."""
        from smartreco.retrieval.index import ExactIndex

        vectors = self.side.item_vectors
        if vectors is None or vectors.dtype != np.float32 or self.uses_indexes():
            return False
        index = self.cb_index
        return type(index) is ExactIndex and index.bias is None

    def content(self, hist: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(profile, item_vectors @ profile)`` of a history, kept for the next call with the same history.

        The fused arm asks twice per request, for its CB candidates and for the ranker's content features:
        one pass over the vectors (9742 x 513 float32, ~1.1 ms) instead of two. One entry, replaced as a
        whole (a tuple), so a concurrent request with another history only misses."""
        key = _history_key(hist)
        memo = getattr(self, "_content_memo", None)
        if memo is not None and memo[0] == key:
            return memo[1], memo[2]
        prof, row = F.content_scores(hist, self.side.item_vectors)
        self._content_memo = (key, prof, row)
        return prof, row

    def popular(self, k: int, exclude: set[str] | None = None, category: str | None = None) -> dict[str, float]:
        ex = self.rows(exclude)
        if self.uses_indexes():  # the precomputed popularity order instead of a catalogue-wide top-k
            order = self.pop_order
            if category is not None:
                order = order[self._category_rows_mask(order, str(category))]
            order = order[~np.isin(order, ex)][: int(k)]
            if len(order) >= int(k):
                return self._as_dict(order, self.pop_score[order].astype(np.float64))
        score = self.pop_score.astype(np.float64)
        ids = None
        if category is not None:
            ids = np.flatnonzero(self._category_rows_mask(np.arange(self.n_items), str(category)))
            score = score[ids]
        idx, sc = F.top_k(score, int(k), ex, ids=ids)
        return self._as_dict(idx, sc)

    def _category_rows_mask(self, rows: np.ndarray, category: str) -> np.ndarray:
        code_of = getattr(self.categories, "code_of", None)
        if code_of is not None:  # CodedColumn: compare codes, not strings
            return np.asarray(self.categories.codes[rows]) == code_of(category)
        return self.categories[rows] == category

    # ------------------------------------------------------------------------------- ranking
    def features(
        self,
        user_id: str | None,
        history: list[str],
        context: dict | None,
        exclude: set[str] | None = None,
        extra: Iterable[str] | None = None,
    ) -> F.UserCandidates:
        """The ranker's candidate pool and features for one request (what :meth:`rank` scores)."""
        hist = self.rows(history)
        u = self.user_vector(user_id, hist)
        args = (
            self.side,
            hist,
            u,
            self.pop_short,
            self.pop_long,
            self.cutoff_s,
            context or {},
            self.rows(exclude),
            self.cand_cfg,
        )
        if self.uses_indexes():
            from smartreco.retrieval.candidates import indexed_candidate_features

            return indexed_candidate_features(
                *args,
                extra_candidates=self.rows(extra),
                cf_index=self.cf_index,
                cb_index=self.cb_index,
                pop_order=self.pop_order,
            )
        memo = getattr(self, "_cb_top_memo", None)  # this history's CB candidates (the fused arm's CB part)
        cb_top = memo[1] if memo is not None and memo[0] == _history_key(hist) else None
        return F.candidate_features(
            *args,
            extra_candidates=self.rows(extra),
            content=self.content(hist),
            cb_top=cb_top,
            pop_score=self.pop_score,
        )

    def rank(
        self,
        user_id: str | None,
        history: list[str],
        cf: Mapping[str, float] | None,
        cb: Mapping[str, float] | None,
        context: dict | None,
        n: int,
        exclude: set[str] | None = None,
        max_category_share: float = 0.5,
        session: Sequence[str] = (),
        session_share: float = DEFAULT_SESSION_SHARE,
    ) -> list[RankedItem]:
        """Top-``n`` with scores, confidence, component contributions and a "because you liked" item.

        ``session``: the user's recent clicks the graph learned from feedback, newest first (its shared state); the
        categories they show that the list lacks get up to ``floor(session_share * n)`` places
        (:mod:`smartreco.serving.session_intent`), from the ranker's best-scored candidates of each, the category's
        most popular items joining the pool so there is one to score."""
        hist = self.rows(history)
        if len(hist) == 0 and not self.has_user(user_id):
            return self._cold_start(cb or {}, context or {}, n, exclude, max_category_share)
        slots = session_slots(n, session_share)
        recent = self.recent_categories(session) if session and slots else []
        extra = list((cf or {}).keys()) + list((cb or {}).keys())
        for category, _ in recent[:slots]:
            extra.extend(self.popular(SESSION_POOL_PER_CATEGORY, exclude, category=category))
        uc = self.features(user_id, history, context, exclude, extra)
        if len(uc.items) == 0:
            return self._cold_start(cb or {}, context or {}, n, exclude, max_category_share)
        pred = self.booster.predict(uc.features, num_threads=1)
        order = np.lexsort((uc.items, -pred))
        categories = self.categories[uc.items[order]]
        picked = diversify(categories, n, max_category_share)
        admitted: dict[int, str] = {}
        if recent:
            picked, admitted = admit_session_categories(picked, categories, [c for c, _ in recent], n, slots)
        clicked = dict(recent)
        session_because = {int(order[p]): clicked[c] for p, c in admitted.items()}
        chosen = order[picked]
        contrib = self.attributions(uc.features[chosen])  # only the returned rows
        # whole columns converted once (tolist: the same Python floats as float() of each numpy scalar)
        scores = pred[chosen]
        components = {k: np.asarray(v).tolist() for k, v in contrib.items()}
        out = []
        columns = (uc.items[chosen].tolist(), uc.because[chosen].tolist(), scores.tolist(), _sigmoid(scores).tolist())
        rows = chosen.tolist()
        for j, (item, because, score, confidence) in enumerate(zip(*columns, strict=True)):
            live_click = session_because.get(rows[j]) if session_because else None
            out.append(
                RankedItem(
                    item_id=str(self.item_ids[item]),
                    title=str(self.titles[item]),
                    category=str(self.categories[item]),
                    score=score,
                    rank=j + 1,
                    confidence=confidence,
                    component_scores={k: v[j] for k, v in components.items()},
                    because_item=live_click or (str(self.item_ids[because]) if because >= 0 else None),
                    because_title=self.title(live_click)
                    if live_click
                    else (str(self.titles[because]) if because >= 0 else None),
                    session=live_click is not None,
                )
            )
        return out

    def recent_categories(self, session: Sequence[str]) -> list[tuple[str, str]]:
        """``(category, newest live click of it)`` for the categories of ``session`` (newest first), unknown ids
        dropped."""
        out: dict[str, str] = {}
        ids = [str(i) for i in session]
        for item in ids:
            rows = self._lookup_rows([item])  # not rows(): its small memo keeps the request's large look-ups
            if len(rows):
                out.setdefault(str(self.categories[int(rows[0])]), item)
        return list(out.items())

    def attributions(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Per-component path attributions of feature rows (:mod:`smartreco.models.path_attributions`): one
        leaf-index prediction and a look-up in the per-leaf table, built on first use (~25 ms for the MovieLens
        ranker), instead of TreeSHAP's ~0.33 ms per row."""
        table = getattr(self, "_leaf_attributions", None)
        if table is None:  # two threads may both build it: the same table, the last one kept
            table = self._leaf_attributions = LeafAttributions.from_booster(
                self.booster, [component for _, component in F.FEATURES], F.COMPONENTS
            )
        if len(rows) == 0:
            return {g: np.zeros(0) for g in table.groups}
        return table.grouped(self.booster.predict(rows, pred_leaf=True, num_threads=1))

    def _cold_start(
        self, cb: Mapping[str, float], context: dict, n: int, exclude: set[str] | None, max_share: float
    ) -> list[RankedItem]:
        """No history, no factors: recent popularity (+ channel/device/hour fit) blended with content."""
        ex = self.rows(exclude)
        pop = self.popular(max(4 * n, 50), exclude)
        pool = self.rows(list(pop) + [i for i in cb if i not in pop])
        pool = pool[~np.isin(pool, ex)]
        if len(pool) == 0:
            return []
        pmax = float(self.pop_score.max()) or 1.0
        pop_part = self.pop_score[pool] / pmax
        shares = [
            F.vocab_share(self.side.ctx_channel, self.side.channel_vocab, context.get("channel"), pool),
            F.vocab_share(self.side.ctx_device, self.side.device_vocab, context.get("device_type"), pool),
        ]
        hb = F.hour_bucket(context.get("hour"))
        if hb is not None:
            shares.append(np.asarray(self.side.ctx_hour[pool, hb], dtype=np.float32))
        stack = np.vstack(shares)  # nan = context value not given / unknown to the bundle
        known = (~np.isnan(stack)).sum(axis=0)
        ctx_part = np.where(known > 0, np.nansum(stack, axis=0) / np.maximum(known, 1), 0.0)
        cb_part = np.asarray([float(cb.get(str(self.item_ids[i]), 0.0)) for i in pool])
        score = 0.6 * pop_part + 0.2 * ctx_part + 0.2 * cb_part
        order = np.lexsort((pool, -score))
        chosen = order[diversify(self.categories[pool[order]], n, max_share)]
        return [
            RankedItem(
                item_id=str(self.item_ids[pool[p]]),
                title=str(self.titles[pool[p]]),
                category=str(self.categories[pool[p]]),
                score=float(score[p]),
                rank=r,
                confidence=float(np.clip(score[p], 0.0, 1.0)),
                component_scores={
                    "cf": 0.0,
                    "cb": 0.2 * float(cb_part[p]),
                    "cooccurrence": 0.0,
                    "popularity": 0.6 * float(pop_part[p]),
                    "context": 0.2 * float(ctx_part[p]),
                },
                because_item=None,
            )
            for r, p in enumerate(chosen, start=1)
        ]


def load_runtime(path: str) -> BundleRuntime:
    """Verify and load a bundle directory (the graph nodes' entry point)."""
    from smartreco.serving.bundle import ModelBundle

    return ModelBundle.load(path)
