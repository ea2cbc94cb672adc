"""FeatureTransformer (TRANSFORMER, the graph's root): validate the request, give it the graph's request id,
add user features, recent history and context; on feedback (method SEND_FEEDBACK, called last by Seldon's
children-first walk) apply what the user's next request must see.

Request: the client's RecommendationRequest. The node sets ``request.request_id`` and ``meta.tags.request_id``
(the client's ``meta.puid`` when it is a safe id, else a fresh one): impressions, feedback and the A/B
analysis join on it, under Seldon's executor as under ours. Recent history and live popularity come from the
shared node state (``smartreco/serving/graph_state.py``, every worker process sees it): the history is merged
in front of the online store's, so a click moves CF fold-in and the CB profile on the very next request even
without a store. Output jsonData: ``{"request": ..., "user": {...}, "history": [...], "known_user": bool,
"context": {...}, "online": {"history": [...], "popularity_boost": {...}}}`` for the router and the models.

Feedback (``send_feedback_raw``: it needs the response's meta): recent history, popularity, the user's cache
generation and the online store push, each idempotent on ``<feedback id>:<effect>``; the durable append was
done before by the first node Seldon called (``append_feedback`` on the CF models / the fused arms).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from inference_graph.base import GraphNode, as_payload, bad_request
from inference_graph.graph_io import feedback_reply, graph_request_id, node_state, online_pusher
from smartreco.schema import RecommendationRequest, RequestValidationError, parse_or_raise, unknown_context_keys
from smartreco.serving.graph_feedback import FeedbackEffects, attribute
from smartreco.serving.online_learning import ONLINE_KEY, merge_history
from smartreco.serving.user_features import load_reader, split_history

log = logging.getLogger(__name__)


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

    def __init__(
        self,
        online_store: str = "sqlite",
        max_history: int = 50,
        push_feedback: bool = True,
        boost_items: int = 50,
        **parameters: Any,
    ) -> None:
        super().__init__(
            online_store=online_store, max_history=max_history, push_feedback=push_feedback, **parameters
        )
        self.online_store = online_store
        self.max_history = int(max_history)
        self.push_feedback = bool(push_feedback)
        self.boost_items = int(boost_items)
        self._reader = None
        self._reader_error: str | None = None
        self.effects: FeedbackEffects | None = None

    def load(self) -> None:
        try:
            self._reader = load_reader(self.online_store)
        except Exception as exc:  # reader not installed: degrade, do not crash the node
            self._reader_error = f"{type(exc).__name__}: {exc}"
            log.warning("feature reader unavailable, serving without user features: %s", self._reader_error)
        self.effects = FeedbackEffects(node_state(), online_pusher() if self.push_feedback else None)
        self.model_version = f"features-{self.online_store}"
        self.loaded = True

    def transform_input(self, X: Any, features_names: list[str] | None = None, **kwargs: Any) -> dict:
        started = self._begin()
        self.ensure_loaded()
        payload = as_payload(X)
        request = validate_request(payload)
        request["request_id"] = graph_request_id(kwargs.get("meta"), request)
        self.add_tag("request_id", request["request_id"])
        online = self.effects.online_block(request["user_id"], self.boost_items)
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
        unknown = unknown_context_keys(request["context"])
        if unknown:  # the context is open: accepted, not acted on, and said so
            self.add_tag("context_unknown_keys", unknown)
        if online.get("history"):
            self.add_tag("online_history", len(online["history"]))
        self.add_metric("COUNTER", "smartreco_known_users_total" if known else "smartreco_unknown_users_total", 1)
        self._finish(started, "transform_input")
        out = {"request": request, "user": user, "history": history, "known_user": known, "context": context}
        if online:
            out[ONLINE_KEY] = online
        return out

    def send_feedback_raw(self, request: Any) -> Any:
        """History, popularity, cache generation and push for one feedback (each once); the reply's tags say
        ``feedback_id`` and ``duplicate`` (True: every effect was already applied by an earlier attempt)."""
        started = self._begin()
        event = self._feedback_event(request)
        served = attribute(event, self.effects.state)
        tags = {
            "feedback_id": event.feedback_id,
            # the graph recorded the answer this feedback is about (the router rewarded its arm)
            "routing_known": served is not None,
            **self.effects.learn(event),
        }
        self.add_metric("COUNTER", "smartreco_feedback_total", 1, duplicate=str(tags["duplicate"]).lower())
        self._finish(started, "send_feedback")
        return feedback_reply(request, tags)
