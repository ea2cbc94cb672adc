"""CFModel (MODEL): collaborative-filtering candidates and scores.

Known users: their learned factors. Unknown users with recent items: fold-in from that history (the
bundle computes a user vector from the items). No history at all: popularity, tagged cold start.
"""

from __future__ import annotations

from typing import Any

from inference_graph.bundle_node import BundleNode, candidate_k, exclusions, graph_input


class CFModel(BundleNode):
    node_type = "MODEL"
    source = "cf"

    def _knows(self, user_id: str) -> bool:
        has_user = getattr(self.bundle, "has_user", None)
        return bool(has_user(user_id)) if callable(has_user) else True

    def predict(self, X: Any, features_names: list[str] | None = None, **kwargs: Any) -> dict:
        started = self._begin()
        self.ensure_loaded()
        payload, request, history = graph_input(X)
        k = candidate_k(request, self.num_candidates)
        exclude = exclusions(request, history)
        scores = self.bundle.cf_candidates(request["user_id"], history, k, exclude)
        cold = None
        if not scores:
            cold = "popularity"
            scores = self.bundle.popular(k, exclude)
        elif history and not self._knows(request["user_id"]):
            cold = "fold_in"
        return self.candidates_answer(payload, scores, cold, started)
