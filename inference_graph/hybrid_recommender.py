"""HybridRecommender (MODEL): one arm of the graph — features, CF and CB candidates, hybrid ranking —
in one process, for the low-latency deployment (``manifests/components/fused-graph``).

Every Seldon hop costs the wrapper's request handling and its metrics IPC (~3-5 ms of CPU each on
this machine, ``benchmarks/results/latency.md``); the full graph pays it five times per request. This
node runs the very same classes (FeatureTransformer, CFModel, CBModel, HybridCombiner) as plain calls
behind the ABRouter, so one request is two hops. What the executor does for a combiner's children it
does here too: a failed candidate source is dropped and named in ``degraded``, never a failed answer;
an unreadable feature store is served without user features.

It is also the arm's feedback node: Seldon calls it first (children first: it is the leaf the route
names), so it appends the feedback durably (``append_feedback``), then applies what the transformer
part applies in the five-node graph (history, popularity, cache generation, push); the router above
rewards the arm. The graph's request id is set here (the router root cannot tag an answer: Seldon
drops a router's meta).
"""

from __future__ import annotations

import logging
from typing import Any

from inference_graph.base import GraphNode, bad_request
from inference_graph.cb_model import CBModel
from inference_graph.cf_model import CFModel
from inference_graph.feature_transformer import FeatureTransformer
from inference_graph.graph_io import append_feedback, event_client, feedback_reply, node_state
from inference_graph.hybrid_combiner import HybridCombiner
from smartreco.schema import RequestValidationError
from smartreco.serving.graph_feedback import parse_feedback
from smartreco.serving.model_uri import load_bundle

log = logging.getLogger(__name__)


class HybridRecommender(GraphNode):
    node_type = "MODEL"

    def __init__(
        self,
        model_uri: str = "",
        cf_model_uri: str = "",
        cb_model_uri: str = "",
        variant: str = "champion",
        max_category_share: float = 0.5,
        online_store: str = "sqlite",
        num_candidates: int = 200,
        append_feedback: bool = True,
        push_feedback: bool = True,
        cache: str = "local",
        cache_ttl_s: float = 30.0,
        **parameters: Any,
    ) -> None:
        super().__init__(
            model_uri=model_uri,
            cf_model_uri=cf_model_uri,
            cb_model_uri=cb_model_uri,
            variant=variant,
            max_category_share=max_category_share,
            online_store=online_store,
            num_candidates=num_candidates,
            append_feedback=append_feedback,
            push_feedback=push_feedback,
            cache=cache,
            **parameters,
        )
        self.append_feedback = bool(append_feedback)
        self._events: Any = None
        # one bundle serves every part unless the deployment names separate ones (as the full graph does)
        self.transformer = FeatureTransformer(online_store=online_store, push_feedback=push_feedback)
        self.cf = CFModel(model_uri=cf_model_uri or model_uri, num_candidates=num_candidates)
        self.cb = CBModel(model_uri=cb_model_uri or model_uri, num_candidates=num_candidates)
        self.combiner = HybridCombiner(
            model_uri=model_uri,
            variant=variant,
            max_category_share=max_category_share,
            cache=cache,
            cache_ttl_s=cache_ttl_s,
            **parameters,
        )
        for part in self.parts:  # this node times and counts the call; the parts' own would only be dropped
            part.records_calls = False
        self._rename()

    @property
    def parts(self) -> tuple[GraphNode, ...]:
        return (self.transformer, self.cf, self.cb, self.combiner)

    def _rename(self) -> None:
        """Parts report metrics under ``<node>/<part>`` so the fused node's dashboards read like the graph's."""
        for suffix, part in zip(("features", "cf", "cb", "hybrid"), self.parts, strict=True):
            part.name = f"{self.name}/{suffix}"

    def load(self) -> None:
        self._rename()  # the executor sets ``name`` after construction
        self.transformer.load()
        # one bundle object per model URI for all the parts (each part wraps it in its own live view): loaded,
        # verified and held once, and the CB candidates and the ranker's content features share one pass over
        # the item vectors per request (BundleRuntime.content), ~1 ms of CPU on the MovieLens bundle
        bundles: dict[str, Any] = {}
        for part in (self.cf, self.cb, self.combiner):
            if part.model_uri not in bundles:
                bundles[part.model_uri] = load_bundle(part.model_uri)
            part.load(bundles[part.model_uri])
        self.model_version = self.combiner.model_version
        self.loaded = True

    def predict(self, X: Any, features_names: list[str] | None = None, **kwargs: Any) -> dict:
        started = self._begin()
        self.ensure_loaded()
        transformed = self.transformer.transform_input(X, meta=kwargs.get("meta"))  # a bad request: its 400
        key = self.combiner.cache_key(transformed)
        hit = self.combiner.cached(transformed, key)
        if hit is not None:  # the user's state has not changed since: no candidate search
            self._finish(started, "predict")
            return hit
        children, failed = [], []
        for part in (self.cf, self.cb):
            try:
                children.append(part.predict(transformed))
            except Exception as exc:  # a broken source degrades the answer, as a dropped child does
                log.warning("%s failed, answering without it: %s", part.name, exc)
                failed.append(part.name)
                self.add_metric("COUNTER", "smartreco_part_errors_total", 1, part=part.source)
        if failed:
            self.add_tag("degraded", ",".join(failed))
        if not children:  # the combiner finds the request on a child message: give it one with no candidates
            children.append({**transformed, "candidates": {}})
        out = self.combiner.aggregate(children, looked_up=key)  # the cache was just asked: not twice
        self._finish(started, "predict")
        return out

    def send_feedback_raw(self, request: Any) -> Any:
        """Durable append first (this is the first node Seldon calls), then the transformer part's effects."""
        started = self._begin()
        self.ensure_loaded()
        tags: dict[str, Any] = {}
        try:
            if self.append_feedback:
                if self._events is None:
                    self._events = event_client() or False
                tags.update(append_feedback(request, node_state(), self._events or None))
            tags.update(self.transformer.effects.learn(parse_feedback(request)))
        except RequestValidationError as exc:
            raise bad_request(str(exc)) from None
        self._finish(started, "send_feedback")
        return feedback_reply(request, tags)

    def metrics(self) -> list[dict]:
        """The node's own timer and count plus the parts' domain metrics (cold starts, known users, ...).

        The parts record no per-call timers/counters (``records_calls`` is off for them): the node's own cover the
        call, and every extra key makes each of seldon-core's metric updates slower (it
        pickles the worker's whole metric dict through a Manager on every call: 14 keys cost ~1 ms of CPU more per
        request than 6, measured in process)."""
        out = super().metrics()
        for part in self.parts:
            out.extend(part.metrics())
        return out

    def tags(self) -> dict:
        merged: dict = {}
        for part in self.parts:
            merged.update(part.tags())
        merged.update(super().tags())
        return merged

    def health_status(self) -> dict:
        status = super().health_status()
        status["parts"] = {part.name: part.health_status().get("model_version") for part in self.parts}
        return status
