"""Base for nodes that serve a model bundle loaded from ``model_uri`` (MLflow URI or path).

A bundle node is a leaf of the graph, so on feedback Seldon's executor (children first) calls it before any
other node: with ``append_feedback`` set (the deployment sets it on the CF models and the fused arms) it
appends the feedback durably through the event service before it answers, so the executor's 200 (which
needs every node's) never precedes durability, and a failed append fails the feedback (the client retries
with the same id; the event log deduplicates it).
"""

from __future__ import annotations

from typing import Any

from inference_graph.base import GraphNode, as_payload, bad_request, freeze_loaded
from inference_graph.graph_io import append_feedback, event_client, feedback_reply, node_state
from smartreco.schema import RequestValidationError
from smartreco.serving.model_uri import load_bundle


class BundleNode(GraphNode):
    #: nodes that retrieve or rank by content serve the live items too (``smartreco items add``)
    serves_live_items = False

    def __init__(
        self, model_uri: str = "", num_candidates: int = 200, append_feedback: bool = False, **parameters: Any
    ) -> None:
        super().__init__(model_uri=model_uri, num_candidates=num_candidates, **parameters)
        self.model_uri = model_uri
        self.num_candidates = int(num_candidates)
        self.append_feedback = bool(append_feedback)
        self.bundle: Any = None
        self._events: Any = None

    def load(self, bundle: Any = None) -> None:
        """Load the bundle of ``model_uri``, or serve ``bundle``, one already loaded from it: the fused arm loads
        each bundle once for all its parts (one copy in memory, and per-request state such as the content
        profile's scores computed once for the CB candidates and the ranker); the wrapper calls ``load()``.

        Every bundle a node serves passes here (the standalone nodes and the fused arm's parts, first load or a
        reload), so here the loaded objects leave the collector's generations (:func:`freeze_loaded`): a full
        collection no longer walks the bundle during requests. The fused arm's later parts find the bundle
        already frozen (their collections are short); a reload frees the replaced bundle before freezing."""
        reload = self.bundle is not None
        self.bundle = load_bundle(self.model_uri) if bundle is None else bundle
        if self.serves_live_items:
            from smartreco.serving.live_ranking import live_view

            self.bundle = live_view(self.bundle)
        self.model_version = str(getattr(self.bundle, "version", "unknown"))
        self.loaded = True
        freeze_loaded(reload)

    def init_metadata(self) -> dict:
        self.ensure_loaded()  # the wrapper asks before load(): report the real model version
        return super().init_metadata()

    def health_status(self) -> dict:
        status = super().health_status()
        if self.bundle is None:
            raise RuntimeError(f"{self.name}: model bundle not loaded")
        return status

    def candidates_answer(self, payload: dict, scores: dict, cold: str | None, started: float) -> dict:
        """The MODEL nodes' common reply: tag and count cold starts, then the candidates message."""
        self.add_tag(f"{self.source}_cold_start", cold or "no")
        self.add_metric(
            "COUNTER", "smartreco_cold_start_total" if cold else "smartreco_warm_total", 1, source=self.source
        )
        self._finish(started, "predict")
        return {
            **payload,
            "source": self.source,
            "candidates": scores_json(scores),
            "cold_start": cold,
            "model_version": self.model_version,
        }

    def send_feedback_raw(self, request: Any) -> Any:
        """Count the reward per node (variant quality shows per model); with ``append_feedback``, append the
        feedback durably first. Learning from it happens in the nodes above and offline."""
        started = self._begin()
        tags: dict = {}
        if self.append_feedback:
            if self._events is None:
                self._events = event_client() or False
            try:
                tags = append_feedback(request, node_state(), self._events or None)
            except RequestValidationError as exc:
                raise bad_request(str(exc)) from None
        reward = getattr(request, "reward", None) if not isinstance(request, dict) else request.get("reward")
        ok = isinstance(reward, (int, float)) and not isinstance(reward, bool)
        self.add_metric("COUNTER", "smartreco_model_feedback_total", 1)
        self.add_metric("COUNTER", "smartreco_model_reward_total", float(reward) if ok else 0.0)
        self._finish(started, "send_feedback")
        return feedback_reply(request, tags)


def graph_input(X: Any) -> tuple[dict, dict, list[str]]:
    """(whole payload, request, history) of a transformed message; a 400 if it is not one."""
    payload = as_payload(X)
    request = payload.get("request")
    if not isinstance(request, dict) or "user_id" not in request:
        raise bad_request("jsonData.request: missing; send requests through the feature-transformer")
    history = [str(i) for i in payload.get("history") or []]
    return payload, request, history


def exclusions(request: dict, history: list[str]) -> set[str]:
    """Items never to recommend: the request's exclusions plus everything the user already saw."""
    return {str(i) for i in request.get("exclude_items") or []} | set(history)


def candidate_k(request: dict, num_candidates: int) -> int:
    n = int(request.get("num_recommendations", 10))
    return max(num_candidates, 3 * n)


def scores_json(scores: dict) -> dict[str, float]:
    return {str(k): float(v) for k, v in scores.items()}
