"""A loaded bundle plus the live items added for it since (``smartreco items add``): what the nodes serve.

:class:`LiveView` wraps a bundle with the same API (everything it does not override goes to the bundle),
so the CB node, the combiner and the fused arm serve new items without knowing about them:

* ``cb_candidates``: the bundle's (exact or ANN) content candidates merged by score with an exact search
  over the small live set (live vector . the history's content profile);
* ``rank``: the bundle's ranking, plus the live items among the candidates scored by the same LightGBM
  ranker on cold-start features (no interactions: CF, co-occurrence and popularity evidence 0, ranks past
  every list; content similarity to the history, category affinity, item age from the row), merged by
  score under the same exclusions and category cap; a live item is a :class:`LiveRankedItem`
  (``new_item``) whose "because" is the most similar history item;
* ``title``: live titles too.

The live set is re-read only when the store's version changed, checked at most every
``SMARTRECO_LIVE_ITEMS_REFRESH_S``; a store that cannot be read leaves the last set in place (the answer
is still served). Items the loaded bundle already holds are expired from the store when it loads (the
retrain that made it included them) and never served as live.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from smartreco.serving.live_items import LiveItem, LiveStore
from smartreco.serving.runtime import RankedItem, diversify
from smartreco.serving.session_intent import DEFAULT_SESSION_SHARE, admit_session_categories

log = logging.getLogger(__name__)


@dataclass
class LiveRankedItem(RankedItem):
    """A recommended live item (not in the bundle yet)."""

    new_item: bool = True


@dataclass
class LiveSet:
    """The live items of one bundle version, as arrays for exact search."""

    items: list[LiveItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = {it.item_id: k for k, it in enumerate(self.items)}
        dim = len(self.items[0].vector) if self.items else 0
        self.vectors = np.stack([it.vector for it in self.items]) if self.items else np.zeros((0, dim), np.float32)

    def __len__(self) -> int:
        return len(self.items)


def bundle_has(bundle: Any, ids: list[str]) -> set[str]:
    """The ids the bundle's catalogue holds."""
    has = getattr(bundle, "has_item", None)
    if callable(has):
        return {i for i in ids if has(i)}
    return {i for i in ids if len(bundle.rows([i]))}


def bundle_dim(bundle: Any) -> int | None:
    """The bundle's content vector size (None when it does not say)."""
    dim = getattr(bundle, "content_dim", None)
    if isinstance(dim, int):
        return dim
    vectors = getattr(getattr(bundle, "side", None), "item_vectors", None)
    return None if vectors is None else int(vectors.shape[1])


# ------------------------------------------------------------------------------------- runtime scoring
#: the ranker features a new item has no evidence for: 0, as for a catalogue item no such evidence reached
#: (log1p(0) for the popularity counts); every other feature is set in :func:`runtime_scores`. A feature the
#: ranker gains must be placed here or there (``tests/unit/test_live_items.py`` checks the two cover it).
ZERO_FEATURES = frozenset(
    {
        "cf_score",
        "cooc_score",
        "cooc_max",
        "cooc_recent",
        "cooc_all_score",
        "knn_score",
        "covisit_score",
        "trans_score",
        "trans_last",
        "pop_short",
        "pop_long",
        "item_count",
    }
)
RANK_FEATURES = {
    "cf_rank": "k_cf",
    "cooc_rank": "k_cooc",
    "knn_rank": "k_knn",
    "covisit_rank": "k_covisit",
    "trans_rank": "k_trans",
    "pop_rank": "k_pop",
}
COMPUTED_FEATURES = frozenset(
    {
        "cb_score",
        "cb_rank",
        "cb_last_sim",
        "cb_recent_max",
        "because_age",
        "category_affinity",
        "item_mean_rating",
        "item_age_days",
        "user_activity",
        "ctx_channel_share",
        "ctx_device_share",
        "ctx_hour_share",
    }
)


def runtime_profile(bundle: Any, history: list[str]) -> np.ndarray | None:
    """The history's content profile in the bundle's space (what its CB retriever scores with)."""
    from smartreco.models import hybrid_features as F

    return F.user_profile(bundle.rows(history), bundle.side.item_vectors)


def runtime_scores(
    bundle: Any, history: list[str], live: list[LiveItem], cb: dict[str, float], context: dict
) -> list[tuple[float, dict[str, float], str | None]]:
    """``(ranker score, component contributions, because item)`` per live item: the bundle's LightGBM ranker
    on the features a catalogue item with no interactions would have (see the module docstring)."""
    from smartreco.models import hybrid_features as F

    hist = bundle.rows(history)
    vectors = bundle.side.item_vectors
    profile = F.user_profile(hist, vectors)
    if profile is None or not live:
        return []
    V = np.stack([it.vector for it in live]).astype(np.float32)
    cfg = bundle.cand_cfg
    col = {name: i for i, name in enumerate(F.FEATURE_NAMES)}
    x = np.zeros((len(live), len(F.FEATURE_NAMES)), dtype=np.float32)
    unplaced = set(F.FEATURE_NAMES) - ZERO_FEATURES - set(RANK_FEATURES) - COMPUTED_FEATURES
    if unplaced:  # a ranker feature this code does not know: answer without the live items rather than guess
        log.warning("live items: no cold-start value for ranker feature(s) %s; not ranked", sorted(unplaced))
        return []
    for name, k in RANK_FEATURES.items():
        x[:, col[name]] = getattr(cfg, k) + 1  # in no list: one past the end, as for an item no retriever found
    cb_score = V @ profile
    x[:, col["cb_score"]] = cb_score
    bundle_cb = np.asarray([v for k, v in cb.items() if k not in {it.item_id for it in live}], dtype=np.float64)
    x[:, col["cb_rank"]] = [min(1 + int((bundle_cb > s).sum()), cfg.k_cb + 1) for s in cb_score]
    sims = np.asarray(V @ np.asarray(vectors[hist], dtype=np.float32).T)  # (live, history)
    recent = sims[:, -F.RECENT_ITEMS :]
    x[:, col["cb_last_sim"]] = recent[:, -1]
    x[:, col["cb_recent_max"]] = recent.max(axis=1)
    best = np.argmax(sims, axis=1)
    x[:, col["because_age"]] = [len(hist) - 1 - int(np.flatnonzero(hist == hist[b]).max()) for b in best]
    hist_cats = [str(c) for c in bundle.categories[hist]]
    x[:, col["category_affinity"]] = [hist_cats.count(it.category) / len(hist) for it in live]
    x[:, col["item_mean_rating"]] = np.nan  # no ratings yet (pop_*, item_count: log1p(0) = 0)
    ages = [(bundle.cutoff_s - it.created_s) / F.SECONDS_PER_DAY for it in live]
    x[:, col["item_age_days"]] = [max(a, 0.0) if not math.isnan(a) else np.nan for a in ages]
    x[:, col["user_activity"]] = np.log1p(len(hist))
    for name in ("ctx_channel_share", "ctx_device_share", "ctx_hour_share"):
        x[:, col[name]] = np.nan  # no events: no context share
    pred = bundle.booster.predict(x, num_threads=1)
    contrib = bundle.attributions(x)  # path attributions, as for the catalogue's items (BundleRuntime.rank)
    return [
        (float(pred[j]), {k: float(v[j]) for k, v in contrib.items()}, str(bundle.item_ids[hist[best[j]]]))
        for j in range(len(live))
    ]


# ------------------------------------------------------------------------------------------ the view
class LiveView:
    """A bundle that also serves the live items stored for its version (see the module docstring)."""

    def __init__(self, bundle: Any, store: LiveStore, refresh_s: float = 1.0, slots: int = 1) -> None:
        self._bundle = bundle
        self._slots = int(slots)
        self._store = store
        self._refresh_s = float(refresh_s)
        self._checked = float("-inf")
        self._version: int | None = None
        self._live = LiveSet()
        self.bundle_version = str(getattr(bundle, "version", "unknown"))
        self._dim = bundle_dim(bundle)
        self._expire()

    def __getattr__(self, name: str) -> Any:  # everything else is the bundle's
        return getattr(self._bundle, name)

    @property
    def base(self) -> Any:
        return self._bundle

    def _expire(self) -> None:
        """Drop from the store the items this bundle holds (its retrain included them)."""
        try:
            ids = sorted(self._store.all_ids())
            held = bundle_has(self._bundle, ids) if ids else set()
            if held:
                log.info("live items: %d now in bundle %s, expired", self._store.expire(held), self.bundle_version)
        except Exception as exc:  # noqa: BLE001 - the store is optional for serving the bundle itself
            log.warning("live items: store unavailable at load (%s); nothing expired", exc)

    def live(self) -> LiveSet:
        """The current live set (re-read when the store's version moved; the last one if it is unreadable)."""
        now = time.monotonic()
        if now - self._checked < self._refresh_s:
            return self._live
        self._checked = now
        try:
            version = self._store.version()
            if version != self._version:
                items = self._store.items(self.bundle_version)
                held = bundle_has(self._bundle, [it.item_id for it in items])
                self._live = LiveSet(
                    [
                        it
                        for it in items
                        if it.item_id not in held and (self._dim is None or len(it.vector) == self._dim)
                    ]
                )
                self._version = version
        except Exception as exc:  # noqa: BLE001 - answer from the bundle alone
            log.warning("live items: store unreadable (%s); serving the last live set", exc)
        return self._live

    @property
    def live_version(self) -> int:
        """What the answer cache keys on: a new live item makes cached answers stale."""
        self.live()
        return int(self._version or 0)

    def title(self, item_id: str) -> str:
        live = self.live()
        k = live.index.get(str(item_id))
        return live.items[k].title if k is not None else self._bundle.title(item_id)

    def _profile(self, history: list[str]) -> np.ndarray | None:
        own = getattr(self._bundle, "live_profile", None)
        return own(history) if callable(own) else runtime_profile(self._bundle, history)

    def live_candidates(self, history: list[str], exclude: set[str] | None = None) -> dict[str, float]:
        """Exact content scores of the admissible live items for this history ({} without a profile)."""
        live = self.live()
        if not len(live) or not history:
            return {}
        profile = self._profile(history)
        if profile is None:
            return {}
        banned = set(exclude or ()) | set(history)
        scores = live.vectors @ np.asarray(profile, dtype=np.float32)
        return {it.item_id: float(s) for it, s in zip(live.items, scores, strict=True) if it.item_id not in banned}

    def cb_candidates(self, history: list[str], k: int, exclude: set[str] | None = None) -> dict[str, float]:
        base = self._bundle.cb_candidates(history, k, exclude)
        extra = self.live_candidates(history, exclude)
        if not extra:
            return base
        merged = sorted({**base, **extra}.items(), key=lambda kv: (-kv[1], kv[0]))
        return dict(merged[: int(k)])

    def rank(
        self,
        user_id: str | None,
        history: list[str],
        cf: dict[str, float] | None,
        cb: dict[str, float] | None,
        context: dict | None,
        n: int,
        exclude: set[str] | None = None,
        max_category_share: float = 0.5,
        session: Sequence[str] = (),
        session_share: float = DEFAULT_SESSION_SHARE,
    ) -> list[Any]:
        session_args = {"session": session, "session_share": session_share}
        live = self.live()
        if not len(live):  # nothing live: the bundle's own ranking, no extra work on the answer path
            return self._bundle.rank(user_id, history, cf, cb, context, n, exclude, max_category_share, **session_args)
        cb = dict(cb or {})
        banned = set(exclude or ()) | set(history)
        picked = [live.items[live.index[i]] for i in cb if i in live.index and i not in banned]
        bundle_cb = {k: v for k, v in cb.items() if k not in live.index}
        cf = {k: v for k, v in (cf or {}).items() if k not in live.index}
        ranked = self._bundle.rank(
            user_id, history, cf, bundle_cb, context, n, exclude, max_category_share, **session_args
        )
        if not picked:
            return ranked
        own = getattr(self._bundle, "live_scores", None)
        scored = (own or (lambda *a: runtime_scores(self._bundle, *a)))(history, picked, cb, context or {})
        if not scored:
            return ranked
        news = [
            LiveRankedItem(
                item_id=it.item_id,
                title=it.title,
                category=it.category,
                score=score,
                rank=0,
                confidence=float(1.0 / (1.0 + math.exp(-max(min(score, 30.0), -30.0)))),
                component_scores=comps,
                because_item=because,
                because_title=self._bundle.title(because) if because else None,
            )
            for it, (score, comps, because) in zip(picked, scored, strict=True)
        ]
        merged = sorted([*ranked, *news], key=lambda r: (-float(_get(r, "score")), str(_get(r, "item_id"))))
        cats = np.asarray([str(_get(r, "category") or "") for r in merged], dtype=object)
        chosen = diversify(cats, int(n), float(max_category_share))
        # the categories the bundle's session rule placed keep a place in the merged list
        placed = [str(_get(r, "category") or "") for r in ranked if _flag(r, "session")]
        if placed:
            chosen, _ = admit_session_categories(chosen, cats, placed, int(n), len(placed))
        out = [merged[p] for p in chosen]
        out = reserve_slots(out, news, bundle_cb, cb, int(n), self._slots, float(max_category_share))
        return [_with_rank(item, r) for r, item in enumerate(out, start=1)]


def reserve_slots(
    out: list[Any],
    news: list[LiveRankedItem],
    bundle_cb: dict[str, float],
    cb: dict[str, float],
    n: int,
    slots: int,
    max_share: float,
) -> list[Any]:
    """Up to ``slots`` positions of the list for new items the ranker scored below it (no interactions is the
    weakest evidence a ranker trained on interactions knows), but only for a new item that content alone puts
    in the top ``n``: its content score is at least the ``n``-th best catalogue candidate's. It takes the
    place of the lowest-ranked catalogue item (of its own category when that category is at its cap), never of one the
    session rule placed."""
    have = sum(1 for r in out if isinstance(r, LiveRankedItem))
    if slots <= have or not out:
        return out
    best = sorted(bundle_cb.values(), reverse=True)
    bar = best[n - 1] if len(best) >= n else float("-inf")
    shown = {str(_get(r, "item_id")) for r in out}
    waiting = sorted(
        (x for x in news if x.item_id not in shown and cb.get(x.item_id, float("-inf")) >= bar),
        key=lambda x: (-x.score, x.item_id),
    )
    cap = max(1, int(math.floor(max_share * n + 1e-9))) if max_share < 1 else n
    out = list(out)
    for new in waiting[: slots - have]:
        cats = [str(_get(r, "category") or "") for r in out]
        same = new.category if len(out) >= n and cats.count(new.category) >= cap else None
        spots = [
            j
            for j, r in enumerate(out)
            if not isinstance(r, LiveRankedItem) and not _flag(r, "session") and (same is None or cats[j] == same)
        ]
        if len(out) < n:
            out.append(new)
        elif spots:
            out[spots[-1]] = new
    return out


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name)


def _flag(item: Any, name: str) -> bool:
    return bool(item.get(name) if isinstance(item, dict) else getattr(item, name, False))


def _with_rank(item: Any, rank: int) -> Any:
    return {**item, "rank": rank} if isinstance(item, dict) else replace(item, rank=rank)


def live_view(bundle: Any) -> Any:
    """The bundle the graph nodes serve: with the live items of the graph's state (``SMARTRECO_STATE`` or
    ``SMARTRECO_GRAPH_STATE``); the bundle itself when live items are switched off
    (``SMARTRECO_LIVE_ITEMS_REFRESH_S`` < 0) or the store cannot be opened."""
    from smartreco import settings
    from smartreco.serving.live_items import open_live_store

    refresh = settings.LIVE_ITEMS_REFRESH_S.get()
    slots = settings.LIVE_ITEMS_SLOTS.get()
    if refresh < 0 or isinstance(bundle, LiveView):
        return bundle
    try:
        store = open_live_store()
    except Exception as exc:  # noqa: BLE001 - serve the bundle alone rather than fail the node's load
        log.warning("live items: store cannot be opened (%s); serving the bundle alone", exc)
        return bundle
    return LiveView(bundle, store, refresh, slots)
