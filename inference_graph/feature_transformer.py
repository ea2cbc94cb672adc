"""FeatureTransformer (TRANSFORMER): validate the request, add user features, recent history and context.

Input jsonData: the RecommendationRequest, plus ``online`` added by the executor (never by a
client: the executor validates the client's request first): ``{"history": [...], "popularity_boost":
{...}}`` from the feedback received since the online store was last written. Its history is merged
in front of the store's, so a click changes CF fold-in and the CB profile on the very next request
even without a store. Output jsonData: ``{"request": ..., "user": {...}, "history": [...],
"known_user": bool, "context": {...}, "online": {...}}`` for the router and the models below
(``online.popularity_boost``: decayed live item counts for the ranking's popularity component).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from inference_graph.base import GraphNode, as_payload, bad_request
from smartreco.schema import RecommendationRequest, RequestValidationError, parse_or_raise
from smartreco.serving.online_learning import ONLINE_KEY, merge_history
from smartreco.serving.user_features import load_reader, split_history

log = logging.getLogger(__name__)


def split_online(payload: dict) -> tuple[dict, dict]:
    """(the request without the executor's ``online`` block, that block with its types checked)."""
    if ONLINE_KEY not in payload:
        return payload, {}
    payload = dict(payload)
    online = payload.pop(ONLINE_KEY)
    if not isinstance(online, dict):
        raise bad_request("jsonData.online: must be an object")
    history = online.get("history") or []
    boost = online.get("popularity_boost") or {}
    if not isinstance(history, list) or not isinstance(boost, dict):
        raise bad_request("jsonData.online: history must be a list and popularity_boost an object")
    return payload, {"history": [str(i) for i in history], "popularity_boost": boost}


def validate_request(payload: Any) -> dict:
    """The request as a plain dict with defaults filled; a 400 naming the field otherwise."""
    if isinstance(payload, dict) and "request" in payload and "user_id" not in payload:
        payload = payload["request"]  # already transformed upstream (idempotent)
    try:
        req = parse_or_raise(RecommendationRequest, payload)
    except RequestValidationError as exc:
        raise bad_request(str(exc)) from None
    return req.model_dump(mode="json")


class FeatureTransformer(GraphNode):
    node_type = "TRANSFORMER"

    def __init__(self, online_store: str = "sqlite", max_history: int = 50, **parameters: Any) -> None:
        super().__init__(online_store=online_store, max_history=max_history, **parameters)
        self.online_store = online_store
        self.max_history = int(max_history)
        self._reader = None
        self._reader_error: str | None = None

    def load(self) -> None:
        try:
            self._reader = load_reader(self.online_store)
        except Exception as exc:  # reader not installed: degrade, do not crash the node
            self._reader_error = f"{type(exc).__name__}: {exc}"
            log.warning("feature reader unavailable, serving without user features: %s", self._reader_error)
        self.model_version = f"features-{self.online_store}"
        self.loaded = True

    def transform_input(self, X: Any, features_names: list[str] | None = None, **kwargs: Any) -> dict:
        started = self._begin()
        self.ensure_loaded()
        payload, online = split_online(as_payload(X))
        request = validate_request(payload)
        user, history, source = {}, [], "online"
        if self._reader is None:
            source = "unavailable"
        else:
            try:
                user, history = split_history(self._reader(request["user_id"]))
            except Exception as exc:  # store down: degrade and say so
                log.warning("online store read failed for %s: %s", request["user_id"], exc)
                source = "unavailable"
                self.add_metric("COUNTER", "smartreco_feature_errors_total", 1)
        history = merge_history(online.get("history") or [], history, self.max_history)
        context = dict(request.get("context") or {})
        now = datetime.now(UTC)
        if context.get("hour") is None:
            context["hour"] = now.hour
        context["day_of_week"] = now.weekday()
        request["context"] = {k: v for k, v in context.items() if k != "day_of_week"}
        known = bool(user.pop("known")) if "known" in user else bool(history)
        known = known or bool(online.get("history"))
        self.add_tag("feature_source", source)
        self.add_tag("known_user", known)
        if online.get("history"):
            self.add_tag("online_history", len(online["history"]))
        self.add_metric("COUNTER", "smartreco_known_users_total" if known else "smartreco_unknown_users_total", 1)
        self._finish(started, "transform_input")
        out = {"request": request, "user": user, "history": history, "known_user": known, "context": context}
        if online:
            out[ONLINE_KEY] = online
        return out
