"""What every node shares: Seldon's optional methods (metrics, tags, health_status, init_metadata),
per-request custom metrics, and turning bad input into a Seldon 400.

Seldon calls the node method, then ``metrics()`` and ``tags()`` in the same thread, and a REST
worker may run several threads, so per-request tags live in thread-local storage.

Custom metrics are batched: seldon-core's ``SeldonMetrics.update`` copies the worker's whole metric
dict to and from a ``multiprocessing.Manager`` under a manager lock on every call that returns
metrics (measured: ~3 ms wall, ~0.7 ms CPU in the node plus the manager's share, per call on this
machine). So ``metrics()`` hands the wrapper what accumulated since its last flush at most every
``SMARTRECO_METRICS_FLUSH_S`` seconds (default 1; 0 = every call, the plain Seldon way): counters
summed per key and tags, gauges as their last value, every timer observation kept. Prometheus scrapes
every 15-30 s, so totals and histograms are the same; only a sub-second lag is added.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from smartreco import __version__, settings
from smartreco.schema import RequestValidationError

# Seldon's wrapper builds the node object, then forks its gunicorn worker(s) and gRPC server. A full garbage
# collection in such a child writes to every object it inherited and so un-shares the parent's whole
# copy-on-write heap at once (~29 MiB per node, benchmarks/results/graph_memory.md). Frozen right after the
# fork, the inherited objects stay out of the child's collections (the recipe of gc.freeze's documentation).
os.register_at_fork(after_in_child=gc.freeze)


def freeze_loaded(reload: bool) -> int:
    """Move what a node just loaded out of the collector's generations; returns ``gc.get_freeze_count()``.

    Why: a loaded bundle is ~115k tracked objects that live as long as the process, and a full collection
    walks them all (~60 ms on the MovieLens bundle, a pause in whichever request triggers it); frozen, they
    are skipped (the collection then walks what requests allocate). The fork-time freeze above does not cover
    them: Seldon's workers load after the fork. ``gc.collect()`` first, so the load's garbage is freed, not
    frozen for the life of the process.

    ``reload``: the node replaced a bundle it served (a second ``load()``). Frozen objects are still freed by
    reference counting, but the cycle collector never looks at them: the replaced bundle's objects that sit in
    reference cycles would never be freed. So a reload unfreezes everything first, collects (the replaced
    bundle's cycles go) and freezes again. The cost, once per reload: a full collection over the whole heap per
    part reloaded (~60 ms each on the MovieLens bundle; the fused arm's reload took 0.29 s, 0.10 s without
    freezing), and in a forked worker it also walks the objects inherited from the parent,
    which un-shares their copy-on-write pages (~29 MiB per node, benchmarks/results/graph_memory.md) -- a
    reload allocates a whole new bundle anyway. A first load does not unfreeze, so it keeps them shared."""
    if reload:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


NODE_ID_ENV = settings.NODE_ID.name
METRICS_FLUSH_ENV = settings.METRICS_FLUSH_S.name


class MetricBatch:
    """Custom metrics waiting for the next flush to the wrapper (thread-safe: one per node)."""

    def __init__(self, flush_s: float) -> None:
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._sums: dict[tuple, dict] = {}  # (type, key, tags) -> metric: counters and gauges
        self._timers: list[dict] = []
        self._flushed_at = float("-inf")

    def add(self, metric: dict) -> None:
        with self._lock:
            if metric["type"] == "TIMER":
                self._timers.append(metric)
                return
            ident = (metric["type"], metric["key"], tuple(sorted(metric["tags"].items())))
            prev = self._sums.get(ident)
            if prev is not None and metric["type"] == "COUNTER":
                prev["value"] += metric["value"]
            else:
                self._sums[ident] = dict(metric)

    def flush(self, force: bool = False) -> list[dict]:
        """What to hand the wrapper now: everything pending once the interval has passed, else []."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._flushed_at < self.flush_s:
                return []
            self._flushed_at = now
            out = [*self._sums.values(), *self._timers]
            self._sums, self._timers = {}, []
        return out


def bad_request(message: str) -> Exception:
    """Seldon's own exception with status 400 when the wrapper is present, else a validation error."""
    try:
        from seldon_core.flask_utils import SeldonMicroserviceException
    except ImportError:  # pragma: no cover - in-process use without seldon-core
        return RequestValidationError(message)
    return SeldonMicroserviceException(message, status_code=400, reason="MICROSERVICE_BAD_DATA")


class GraphNode:
    """Base of the node classes: keeps the parameters and reports per-request metrics and tags."""

    node_type = "MODEL"
    #: whether ``_finish`` records the call's timer and count; False for the parts of a fused arm
    #: (``HybridRecommender``), whose node reports one call for all of them and dropped the parts' at every flush
    records_calls = True

    def __init__(self, **parameters: Any) -> None:
        self.parameters = parameters
        self.name = settings.NODE_ID.get() or type(self).__name__
        self.loaded = False
        self.model_version = "unloaded"
        self._local = threading.local()
        self._started = time.time()
        self._metrics = MetricBatch(settings.METRICS_FLUSH_S.get())

    def _feedback_event(self, request: Any) -> Any:
        """The feedback this node was sent, parsed the one way every node parses it
        (:func:`smartreco.serving.graph_feedback.parse_feedback`); a malformed one is Seldon's 400."""
        from smartreco.serving.graph_feedback import parse_feedback

        self.ensure_loaded()
        try:
            return parse_feedback(request)
        except RequestValidationError as exc:
            raise bad_request(str(exc)) from None

    # --- lifecycle -------------------------------------------------------------------------------
    def load(self) -> None:
        """Called by the wrapper in each worker after fork; subclasses load their artifacts here."""
        self.loaded = True

    def ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()

    # --- per-request state -----------------------------------------------------------------------
    def _begin(self) -> float:
        self._local.tags = {}
        return time.perf_counter()

    def _finish(self, started: float, method: str) -> None:
        if not self.records_calls:
            return
        self.add_metric("TIMER", "smartreco_node_ms", (time.perf_counter() - started) * 1000.0, method=method)
        self.add_metric("COUNTER", "smartreco_node_requests_total", 1, method=method)

    def add_metric(self, kind: str, key: str, value: float, **tags: str) -> None:
        self._metrics.add({"type": kind, "key": key, "value": float(value), "tags": {"node": self.name, **tags}})

    def add_tag(self, key: str, value: Any) -> None:
        tags = getattr(self._local, "tags", None)
        if tags is None:
            tags = self._local.tags = {}
        tags[key] = value

    # --- Seldon optional methods -----------------------------------------------------------------
    def metrics(self) -> list[dict]:
        return self._metrics.flush()

    def tags(self) -> dict:
        out = getattr(self._local, "tags", None) or {}
        self._local.tags = {}
        return out

    # --- Seldon raw methods ------------------------------------------------------------------------
    def predict_raw(self, request: Any) -> dict:
        """``predict`` as Seldon's raw method (MODEL nodes): the reply the wrapper builds for the plain method,
        with one metrics update per call instead of two (:meth:`raw_reply`). A node without ``predict``, or a
        request that is not jsonData, is left to the wrapper's own path."""
        predict = getattr(self, "predict", None)
        if predict is None:
            raise not_implemented("no predict")
        req = raw_json_request(request)
        out = predict(req["jsonData"], [], meta=req.get("meta") or {})
        return self.raw_reply(req, {"jsonData": out})

    def route_raw(self, request: Any) -> dict:
        """``route`` as Seldon's raw method (ROUTER nodes): the wrapper's reply (``names`` ``t:0``, the route as a
        1x1 tensor, only the node's tags), with one metrics update per call instead of two."""
        route = getattr(self, "route", None)
        if route is None:
            raise not_implemented("no route")
        req = raw_json_request(request)
        choice = route(req["jsonData"], [], meta=req.get("meta") or {})
        body = {"data": {"names": ["t:0"], "tensor": {"shape": [1, 1], "values": [choice]}}}
        return self.raw_reply(req, body, request_tags=False)

    def raw_reply(self, request: dict, body: dict, request_tags: bool = True) -> dict:
        """The reply the wrapper builds for a plain method (``construct_response_json``), built here: ``body``
        plus ``meta`` with the tags (the request's first when ``request_tags``, as for predict; a route's reply
        has only the node's), ``puid``, ``requestPath`` and this call's metrics in ``meta.metrics``.

        Why a raw method at all: for a plain method seldon-core 1.19 updates its metrics store twice per call
        (the method's runtime metrics, then ``metrics()``), each a read and a write of the worker's whole metric
        dict through a ``multiprocessing.Manager`` under a manager lock (six round trips); for a raw method it
        updates once, with ``meta.metrics`` of the reply, and strips them from the reply unless
        ``INCLUDE_METRICS_IN_CLIENT_RESPONSE`` (default true) keeps them, as it does for a plain method. A
        request's own ``meta.metrics`` are not carried over (the executor sends none)."""
        meta_in = request.get("meta") or {}
        meta: dict[str, Any] = {}
        tags = {**(meta_in.get("tags") or {}), **self.tags()} if request_tags else self.tags()
        if tags:
            meta["tags"] = tags
        metrics = self.metrics()
        if metrics:
            meta["metrics"] = metrics
        if meta_in.get("puid"):
            meta["puid"] = meta_in["puid"]
        path = {**request_path(), **((meta_in.get("requestPath") or {}) if request_tags else {})}
        if path:
            meta["requestPath"] = path
        return {**body, "meta": meta}

    def health_status(self) -> dict:
        self.ensure_loaded()
        return {"status": "ok", "node": self.name, "model_version": self.model_version}

    def init_metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [str(self.model_version)],
            "platform": "smartreco",
            "inputs": [{"messagetype": "jsonData"}],
            "outputs": [{"messagetype": "jsonData"}],
            "custom": {
                "node_type": self.node_type,
                "class": type(self).__name__,
                "smartreco_version": __version__,
                **{k: str(v) for k, v in self.parameters.items()},
            },
        }


def not_implemented(message: str) -> Exception:
    """What a raw method raises to hand a call back to the wrapper's plain path (its ``SeldonNotImplementedError``)."""
    try:
        from seldon_core.user_model import SeldonNotImplementedError
    except ImportError:  # pragma: no cover - raw methods are only called by the wrapper
        return NotImplementedError(message)
    return SeldonNotImplementedError(message)


def raw_json_request(request: Any) -> dict:
    """The JSON request (``{"jsonData": {...}, "meta": {...}}``) a raw method serves itself; anything else (a
    gRPC SeldonMessage, a ``data``/``strData`` payload, a non-object ``jsonData``) is left to the wrapper's own
    path, which the wrapper takes when a raw method raises its ``SeldonNotImplementedError``."""
    if isinstance(request, dict) and isinstance(request.get("jsonData"), dict):
        return request
    raise not_implemented("not a jsonData request: the wrapper's own path serves it")


def request_path() -> dict[str, str]:
    """``{node name: image}`` as the wrapper adds it to every reply (empty outside the wrapper)."""
    try:
        from seldon_core.utils import get_request_path
    except ImportError:  # pragma: no cover
        return {}
    return get_request_path()


def as_payload(features: Any) -> dict:
    """The jsonData dict a node receives; anything else is a 400 naming the message field."""
    if isinstance(features, dict):
        return features
    raise bad_request(f"jsonData: expected a JSON object, got {type(features).__name__}")
