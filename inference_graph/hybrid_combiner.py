"""HybridCombiner (COMBINER): merge the children's candidates, rank with the hybrid model, apply
exclusions and category diversity, and explain each item from its component contributions.

A missing child (the executor dropped a failed or slow one) leaves its candidates empty: the answer
is ranked from what remains (popularity when nothing remains) and ``degraded`` says so.

Live popularity (``online.popularity_boost``: the executor's decayed counts of recent feedback) is
blended in as extra candidates: the model runtime has no popularity hook, so the boosted items (scaled
to (0, 1] by the hottest one) join the content (cb) candidate slot, the only one the runtime's cold
start scores (weight 0.2 of its 0..1 score; a warm user's ranker re-scores them from its own features).
For a cold start that share is reported as popularity, not content, in the explanation. The lift is
bounded on purpose: feedback is client-supplied, so a burst cannot push a tail item over the head.

Session intent (``session_share``, default 0.2): the categories of the user's live clicks that the ranked list
lacks get up to ``floor(session_share * n)`` places, each taken by the ranker's best-scored candidate of the
category and explained by the click (``smartreco/serving/session_intent.py``); ``session_share=0`` turns it off.

Every answer is recorded in the shared node state (request id -> user, variant, model version): the
router rewards the arm that really served it and feedback sent without the response is attributed to the
user's last answer. Answers are cached per user and state generation (``cache``: local | redis://... |
off; a feedback bumps the generation, so the next answer is fresh); a hit is tagged ``cache: hit``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from inference_graph.base import bad_request
from inference_graph.bundle_node import BundleNode, exclusions
from inference_graph.graph_io import AnswerCache, node_state
from smartreco.explain.reasons import explain
from smartreco.serving.graph_state import Served
from smartreco.serving.session_intent import DEFAULT_SESSION_SHARE

COMPONENT_KEYS = ("cf", "cb", "cooccurrence", "popularity", "context")


def _field(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, dict):
        return item.get(name, default)
    return getattr(item, name, default)


def _evidence(message: dict) -> dict[str, float]:
    """A child's candidates; popularity fallbacks count as candidates with no cf/cb evidence."""
    cands = message.get("candidates") or {}
    if message.get("cold_start") == "popularity":
        return dict.fromkeys(cands, 0.0)
    return cands


MAX_BOOST_ITEMS = 200
#: ``aggregate``'s ``looked_up`` default: the answer cache was not consulted for this request yet
UNCHECKED: Any = object()


def popularity_boost(message: dict) -> dict[str, float]:
    """``online.popularity_boost`` scaled to (0, 1] by its largest count; malformed entries are dropped
    (the block is the executor's, but a node must not crash on it)."""
    online = message.get("online")
    raw = online.get("popularity_boost") if isinstance(online, dict) else None
    if not isinstance(raw, dict):
        return {}
    counts = {
        str(k): float(v)
        for k, v in list(raw.items())[:MAX_BOOST_ITEMS]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    }
    top = max(counts.values(), default=0.0)
    return {k: v / top for k, v in counts.items()} if top > 0 else {}


def live_clicks(message: dict) -> list[str]:
    """``online.history``: the user's recent clicks the graph learned from feedback (its shared state), newest
    first: the session rule's input. Malformed entries are dropped."""
    online = message.get("online")
    raw = online.get("history") if isinstance(online, dict) else None
    if not isinstance(raw, list):
        return []
    return [str(i) for i in raw if isinstance(i, (str, int)) and not isinstance(i, bool)]


class HybridCombiner(BundleNode):
    node_type = "COMBINER"
    serves_live_items = True

    def __init__(
        self,
        variant: str = "champion",
        max_category_share: float = 0.5,
        session_share: float = DEFAULT_SESSION_SHARE,
        cache: str = "local",
        cache_ttl_s: float = 30.0,
        **parameters: Any,
    ) -> None:
        super().__init__(
            variant=variant, max_category_share=max_category_share, session_share=session_share, **parameters
        )
        self.variant = variant
        self.max_category_share = float(max_category_share)
        self.session_share = float(session_share)
        self.cache = AnswerCache(cache, cache_ttl_s)
        self.state: Any = None

    def load(self, bundle: Any = None) -> None:
        super().load(bundle)
        self.state = node_state()

    def _cache_version(self) -> str:
        """What a cached answer was computed from: the model and, when live items are served, their version."""
        live = getattr(self.bundle, "live_version", None)
        return str(self.model_version) if live is None else f"{self.model_version}+live{live}"

    def cache_key(self, message: dict) -> str | None:
        """The answer cache's key of a transformed message (None: cache off); it reads the user's generation."""
        return self.cache.key(self.state, message, self._cache_version())

    def cached(self, message: dict, key: str | None = None) -> dict | None:
        """The cached answer for this transformed message (with its own request id, recorded as served)."""
        self.ensure_loaded()
        request = message["request"]
        if key is None:
            key = self.cache_key(message)
        hit = self.cache.get(str(request["user_id"]), key)
        if hit is None:
            return None
        self.add_tag("cache", "hit")
        self.add_tag("variant", self.variant)
        return self._served(
            {**hit, "request_id": request.get("request_id"), "timestamp": datetime.now(UTC).isoformat()}
        )

    def _served(self, answer: dict) -> dict:
        """Record the answer (the router's reward and the feedback attribution read it), then return it."""
        if answer.get("request_id"):
            self.state.record_served(
                Served(str(answer["request_id"]), str(answer["user_id"]), self.variant, str(self.model_version))
            )
        return answer

    def _title(self, item_id: str | None) -> str | None:
        if not item_id:
            return None
        for attr in ("title", "item_title", "title_of"):
            fn = getattr(self.bundle, attr, None)
            if callable(fn):
                try:
                    return fn(item_id)
                except Exception:  # unknown id: fall back to the id
                    return str(item_id)
        titles = getattr(self.bundle, "titles", None)
        if isinstance(titles, dict):
            return titles.get(str(item_id), str(item_id))
        return str(item_id)

    def aggregate(
        self, features_list: list[Any], feature_names_list: list[Any] | None = None, looked_up: Any = UNCHECKED
    ) -> dict:
        """The ranked, explained answer. ``looked_up``: the cache key under which the caller has just missed
        for this request (the fused arm looks the cache up before its candidate search, :meth:`cached`), so the
        key (a state read and a digest) and the look-up are not done twice; by default (Seldon's call) both are
        done here. The answer is stored under that key, the state the request was served from."""
        started = self._begin()
        self.ensure_loaded()
        messages = [m for m in features_list if isinstance(m, dict)]
        base = next((m for m in messages if isinstance(m.get("request"), dict)), None)
        if base is None:
            raise bad_request("seldonMessages: no child message carries jsonData.request")
        request, history = base["request"], [str(i) for i in base.get("history") or []]
        user = str(request["user_id"])
        key = looked_up
        if key is UNCHECKED:
            key = self.cache_key(base)
            hit = self.cached(base, key)
            if hit is not None:
                self._finish(started, "aggregate")
                return hit
        by_source = {m.get("source"): _evidence(m) for m in messages if m.get("source")}
        cf, cb = by_source.get("cf", {}), by_source.get("cb", {})
        degraded = [s for s in ("cf", "cb") if s not in by_source]
        exclude = exclusions(request, history)
        n = int(request.get("num_recommendations", 10))
        context = base.get("context") or request.get("context") or {}
        if not cf and not cb:
            cf = {str(k): float(v) for k, v in self.bundle.popular(max(3 * n, 50), exclude).items()}
        boost = {k: v for k, v in popularity_boost(base).items() if k not in exclude}
        boosted_only = {k for k in boost if not cb.get(k)}  # no content evidence of their own
        if boost:
            cb = {**cb, **{k: max(float(cb.get(k, 0.0)), v) for k, v in boost.items()}}
            self.add_tag("online_boost", len(boost))
        cold = not history and not base.get("known_user")
        ranked = self.bundle.rank(
            request["user_id"],
            history,
            cf,
            cb,
            context,
            n,
            exclude,
            max_category_share=self.max_category_share,
            session=live_clicks(base),
            session_share=self.session_share,
        )
        ranked = [r for r in ranked if str(_field(r, "item_id")) not in exclude][:n]
        if any(_field(r, "session", False) for r in ranked):
            self.add_tag("session_items", sum(1 for r in ranked if _field(r, "session", False)))
        explain_on = bool(request.get("include_explanation", True))
        channel = (request.get("context") or {}).get("channel")
        recs = []
        for pos, item in enumerate(ranked, start=1):
            comps = {k: float(v) for k, v in (_field(item, "component_scores") or {}).items()}
            if cold and str(_field(item, "item_id")) in boosted_only and comps.get("cb"):
                comps["popularity"] = comps.get("popularity", 0.0) + comps.pop("cb")  # live popularity
                comps["cb"] = 0.0
            category = _field(item, "category", "") or ""
            because = _field(item, "because_item")
            conf = _field(item, "confidence")
            new_item = bool(_field(item, "new_item", False))
            recs.append(
                {
                    "item_id": str(_field(item, "item_id")),
                    "title": _field(item, "title", "") or "",
                    "category": category,
                    "score": float(_field(item, "score", 0.0)),
                    "rank": pos,
                    "explanation": explain(
                        comps,
                        because_title=self._title(because),
                        category=category,
                        channel=channel,
                        new_item=new_item,
                        session=bool(_field(item, "session", False)),
                    )
                    if explain_on
                    else None,
                    "confidence": None if conf is None else min(max(float(conf), 0.0), 1.0),
                    "component_scores": comps,
                    **({"new_item": True} if new_item else {}),  # catalogue items' answers keep their shape
                }
            )
        self.add_tag("variant", self.variant)
        self.add_tag("model_version", self.model_version)
        if degraded:
            self.add_tag("combiner_missing", ",".join(degraded))
        self.add_metric("COUNTER", "smartreco_recommendations_total", len(recs), variant=self.variant)
        if len(recs) < n:
            self.add_metric("COUNTER", "smartreco_short_answers_total", 1, variant=self.variant)
        self._finish(started, "aggregate")
        answer = {
            "user_id": request["user_id"],
            "recommendations": recs,
            "model_version": self.model_version,
            "variant": self.variant,
            "timestamp": datetime.now(UTC).isoformat(),
            "context": request.get("context") or {},
            "request_id": request.get("request_id"),
            "cold_start": cold,
            "degraded": degraded,
        }
        if not degraded:  # a degraded answer is not kept: the next request may get the whole graph again
            self.cache.put(user, key, answer)
        return self._served(answer)
