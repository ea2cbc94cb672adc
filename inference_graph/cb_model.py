"""CBModel (MODEL): content-based candidates from the embeddings of the user's recent items.

Users with no history get popular items (optionally of the context's preferred category), tagged
cold start. Live items (``smartreco items add``) join the candidates by content score
(:mod:`smartreco.serving.live_ranking`).
"""

from __future__ import annotations

from typing import Any

from inference_graph.bundle_node import BundleNode, candidate_k, exclusions, graph_input


class CBModel(BundleNode):
    node_type = "MODEL"
    source = "cb"
    serves_live_items = True

    def predict(self, X: Any, features_names: list[str] | None = None, **kwargs: Any) -> dict:
        started = self._begin()
        self.ensure_loaded()
        payload, request, history = graph_input(X)
        k = candidate_k(request, self.num_candidates)
        exclude = exclusions(request, history)
        scores = self.bundle.cb_candidates(history, k, exclude) if history else {}
        cold = None
        if not scores:
            cold = "popularity"
            category = (payload.get("user") or {}).get("top_category")
            scores = self.bundle.popular(k, exclude, category=category) if category else {}
            scores = scores or self.bundle.popular(k, exclude)
        return self.candidates_answer(payload, scores, cold, started)
