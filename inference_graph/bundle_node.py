"""Base for nodes that serve a model bundle loaded from ``model_uri`` (MLflow URI or path)."""

from __future__ import annotations

from typing import Any

from inference_graph.base import GraphNode, as_payload, bad_request
from smartreco.serving.model_uri import load_bundle


class BundleNode(GraphNode):
    def __init__(self, model_uri: str = "", num_candidates: int = 200, **parameters: Any) -> None:
        super().__init__(model_uri=model_uri, num_candidates=num_candidates, **parameters)
        self.model_uri = model_uri
        self.num_candidates = int(num_candidates)
        self.bundle: Any = None

    def load(self) -> None:
        self.bundle = load_bundle(self.model_uri)
        self.model_version = str(getattr(self.bundle, "version", "unknown"))
        self.loaded = True

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

    def send_feedback(
        self, features: Any, feature_names: Any, reward: float, truth: Any, routing: int | None = None
    ) -> list:
        """Count the reward per node (variant quality shows per model); learning happens offline."""
        self._begin()
        self.add_metric("COUNTER", "smartreco_model_feedback_total", 1)
        self.add_metric("COUNTER", "smartreco_model_reward_total", float(reward))
        return []


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
