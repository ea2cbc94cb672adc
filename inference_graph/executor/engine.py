"""Walks the graph with Seldon Core v1 executor rules, asynchronously and with per-node timeouts.

- a node's input step (MODEL: predict, TRANSFORMER: transform_input), then its children, then an
  OUTPUT_TRANSFORMER's transform_output;
- a ROUTER's route picks the child (-1 all, -2 none); RANDOM_ABTEST uses ratioA; otherwise all
  children run in parallel and a COMBINER aggregates them (a non-combiner keeps the first output);
- ``meta.routing`` (router → child index) and ``meta.requestPath`` (node → image) are filled, node
  tags are merged and a router's own meta is dropped;
- feedback walks children first along ``response.meta.routing`` (all children when absent), then
  calls every MODEL/ROUTER (or SEND_FEEDBACK) node with the same message.
A failed or slow child of a combiner is dropped and named in ``meta.tags.degraded`` instead of
failing the request; a failed feature-transformer means no user features, also tagged.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from inference_graph.executor.graph import GraphNodeSpec, GraphSpec
from inference_graph.executor.metrics import ExecutorMetrics
from inference_graph.executor.transport import NodeCallError, Transport
from smartreco.schema import RecommendationRequest, RequestValidationError, parse_or_raise
from smartreco.serving.cache import ResponseCache, cache_key

DEFAULT_TIMEOUT_MS = 2000.0


class GraphUnavailable(Exception):
    """The graph could not produce an answer at all (e.g. every path failed)."""


@dataclass
class _Walk:
    puid: str
    tags: dict[str, Any] = field(default_factory=dict)
    routing: dict[str, int] = field(default_factory=dict)
    request_path: dict[str, str] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)


def validate_message(message: Any) -> dict:
    """The SeldonMessage's validated jsonData request; RequestValidationError naming the field."""
    if not isinstance(message, dict):
        raise RequestValidationError(f"request body: must be a JSON object, got {type(message).__name__}")
    data = message.get("jsonData")
    if data is None:
        other = [k for k in ("data", "strData", "binData") if k in message]
        hint = f" (got {other[0]}; this graph takes jsonData)" if other else ""
        raise RequestValidationError(f"jsonData: field required{hint}", "jsonData")
    if not isinstance(data, dict):
        raise RequestValidationError(f"jsonData: must be an object, got {type(data).__name__}", "jsonData")
    try:
        req = parse_or_raise(RecommendationRequest, data)
    except RequestValidationError as exc:
        raise RequestValidationError(f"jsonData.{exc}", f"jsonData.{exc.field}") from None
    return req.model_dump(mode="json")


class GraphEngine:
    def __init__(
        self,
        graph: GraphSpec,
        transport: Transport,
        *,
        cache: ResponseCache | None = None,
        metrics: ExecutorMetrics | None = None,
        default_timeout_ms: float = DEFAULT_TIMEOUT_MS,
        graph_version: str = "dev",
        recent_routes: int = 100_000,
    ) -> None:
        self.graph = graph
        self.transport = transport
        self.cache = cache
        self.metrics = metrics or ExecutorMetrics()
        self.default_timeout_ms = default_timeout_ms
        self.graph_version = graph_version
        self._routes: OrderedDict[str, dict[str, int]] = OrderedDict()  # puid/user -> routing
        self._routes_max = recent_routes
        self._rng = random.Random()
        self.push_interaction: Any = None  # (user_id, item_id) -> None: the online store's push source

    # ------------------------------------------------------------------ predict
    async def predict(self, message: Any) -> dict:
        """Full answer (Seldon JSON message) for a request message; raises RequestValidationError."""
        request = validate_message(message)
        in_meta = message.get("meta") or {}
        walk = _Walk(puid=str(in_meta.get("puid") or uuid.uuid4().hex))
        key = None
        if self.cache is not None:
            key = cache_key(request["user_id"], request, self.graph_version)
            hit = self.cache.get(request["user_id"], key)
            if hit is not None:
                self.metrics.cache.labels("hit").inc()
                out = {"jsonData": hit["jsonData"], "meta": {**hit["meta"], "puid": walk.puid}}
                out["meta"]["tags"] = {**hit["meta"].get("tags", {}), "cache": "hit"}
                self._remember(walk.puid, request["user_id"], out["meta"].get("routing", {}))
                return out
            self.metrics.cache.labels("miss").inc()
        data = await self._node(
            self.graph.root, {"jsonData": request, "meta": {"puid": walk.puid}}, walk, request
        )
        if walk.degraded:
            walk.tags["degraded"] = ",".join(sorted(set(walk.degraded)))
            for name in set(walk.degraded):
                self.metrics.degraded.labels(name).inc()
        meta = {
            "puid": walk.puid,
            "tags": walk.tags,
            "routing": walk.routing,
            "requestPath": walk.request_path,
        }
        out = {"jsonData": data, "meta": meta}
        self._remember(walk.puid, request["user_id"], walk.routing)
        if key is not None and not walk.degraded:
            self.cache.put(request["user_id"], key, out)
        return out

    def _timeout(self, node: GraphNodeSpec) -> float:
        return float(node.param("timeout_ms", self.default_timeout_ms)) / 1000.0

    async def _call(self, node: GraphNodeSpec, method: str, message: dict) -> dict:
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self.transport.call(node, method, message), self._timeout(node))
        except TimeoutError:
            self.metrics.node_errors.labels(node.name, "timeout").inc()
            raise NodeCallError(node.name, f"timed out after {self._timeout(node) * 1000:.0f} ms") from None
        except NodeCallError as exc:
            self.metrics.node_errors.labels(node.name, str(exc.status or "unreachable")).inc()
            raise
        finally:
            self.metrics.node_seconds.labels(node.name, method).observe(time.perf_counter() - started)

    def _absorb(self, node: GraphNodeSpec, resp: dict, walk: _Walk) -> None:
        walk.request_path[node.name] = node.image
        if node.type != "ROUTER":  # Seldon drops a router's own meta
            walk.tags.update((resp.get("meta") or {}).get("tags") or {})

    async def _node(self, node: GraphNodeSpec, message: dict, walk: _Walk, request: dict) -> Any:
        data = message.get("jsonData")
        if node.does_input:
            method = "transform_input" if node.type == "TRANSFORMER" else "predict"
            try:
                resp = await self._call(node, method, {"jsonData": data, "meta": {"puid": walk.puid}})
            except NodeCallError as exc:
                if exc.status == 400:
                    raise RequestValidationError(str(exc).split(": ", 1)[-1]) from None
                if node.type != "TRANSFORMER":
                    raise
                walk.degraded.append(node.name)  # go on without user features
                data = {
                    "request": request,
                    "user": {},
                    "history": [],
                    "known_user": False,
                    "context": request.get("context") or {},
                }
            else:
                self._absorb(node, resp, walk)
                data = resp.get("jsonData")
        if node.children:
            data = await self._children(node, data, walk, request)
        if node.type == "OUTPUT_TRANSFORMER" or "TRANSFORM_OUTPUT" in node.methods:
            resp = await self._call(node, "transform_output", {"jsonData": data, "meta": {"puid": walk.puid}})
            self._absorb(node, resp, walk)
            data = resp.get("jsonData")
        return data

    async def _route(self, node: GraphNodeSpec, data: Any, walk: _Walk) -> int:
        if node.type == "ROUTER":
            try:
                resp = await self._call(node, "route", {"jsonData": data, "meta": {"puid": walk.puid}})
                route = _first_number(resp)
            except NodeCallError:
                walk.degraded.append(node.name)  # a dead router must not stop traffic: first child
                route = 0
            walk.request_path[node.name] = node.image
            return route
        if node.implementation == "RANDOM_ABTEST":
            return 0 if self._rng.random() < float(node.param("ratioA", 0.5)) else 1
        return -1

    async def _children(self, node: GraphNodeSpec, data: Any, walk: _Walk, request: dict) -> Any:
        route = await self._route(node, data, walk)
        if node.type == "ROUTER" or node.implementation == "RANDOM_ABTEST":
            walk.routing[node.name] = route
        if route == -2:
            return data
        if route >= len(node.children):
            raise GraphUnavailable(f"{node.name}: route {route} but only {len(node.children)} children")
        children = node.children if route == -1 else [node.children[route]]
        msg = {"jsonData": data, "meta": {"puid": walk.puid}}
        results = await asyncio.gather(
            *(self._node(c, msg, walk, request) for c in children), return_exceptions=True
        )
        ok = []
        for child, res in zip(children, results, strict=True):
            if isinstance(res, RequestValidationError):
                raise res
            if isinstance(res, BaseException):
                walk.degraded.append(child.name)
            else:
                ok.append(res)
        if node.type == "COMBINER":
            inputs = ok or [data]  # nothing came back: let the combiner fall back (popularity)
            resp = await self._call(node, "aggregate", {"seldonMessages": [{"jsonData": o} for o in inputs]})
            self._absorb(node, resp, walk)
            return resp.get("jsonData")
        if not ok:
            raise GraphUnavailable(f"{node.name}: every child failed ({', '.join(walk.degraded)})")
        return ok[0]

    # ------------------------------------------------------------------ feedback
    def _remember(self, puid: str, user_id: str, routing: dict[str, int]) -> None:
        for key in (f"puid:{puid}", f"user:{user_id}"):
            self._routes[key] = dict(routing)
            self._routes.move_to_end(key)
        while len(self._routes) > self._routes_max:
            self._routes.popitem(last=False)

    async def feedback(self, message: Any) -> dict:
        """Route feedback back along the recorded path; invalidate the user's cached answers."""
        if not isinstance(message, dict):
            raise RequestValidationError("request body: must be a JSON object")
        reward = message.get("reward", 0.0)
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not 0 <= reward <= 100:
            raise RequestValidationError("reward: must be a number within [0, 100]", "reward")
        response = message.get("response") or {}
        if not isinstance(response, dict):
            raise RequestValidationError("response: must be an object", "response")
        meta = dict(response.get("meta") or {})
        req_data = (message.get("request") or {}).get("jsonData") or {}
        user_id = req_data.get("user_id") or (response.get("jsonData") or {}).get("user_id")
        if isinstance(user_id, float) and user_id.is_integer():
            user_id = int(user_id)
        if not meta.get("routing"):  # e.g. CLI feedback: use the route this executor recorded
            recorded = self._routes.get(f"puid:{meta.get('puid')}") or self._routes.get(f"user:{user_id}")
            if recorded:
                meta["routing"] = recorded
        routing = {k: int(v) for k, v in (meta.get("routing") or {}).items()}
        fb = {
            **message,
            "reward": float(reward),
            "response": {**response, "meta": {**meta, "routing": routing}},
        }
        truth = message.get("truth")
        if isinstance(truth, dict) and not {"data", "jsonData", "strData", "binData"} & truth.keys():
            fb["truth"] = {"jsonData": truth}  # Seldon's Feedback.truth is a SeldonMessage
        errors: list[str] = []
        await self._feedback_node(self.graph.root, fb, routing, errors)
        if user_id is not None and self.cache is not None:
            self.cache.invalidate_user(str(user_id))
        truth_doc = message.get("truth") or {}
        truth_doc = truth_doc.get("jsonData", truth_doc) if isinstance(truth_doc, dict) else {}
        pushed = None
        if self.push_interaction is not None and user_id is not None and truth_doc.get("item_id") is not None:
            try:  # the next recommendation for this user sees the interaction at once
                await asyncio.to_thread(self.push_interaction, str(user_id), str(truth_doc["item_id"]))
                pushed = True
            except Exception:
                pushed = False
        self.metrics.feedback.inc()
        self.metrics.reward.inc(float(reward))
        tags: dict[str, Any] = {"routing_known": bool(routing)}
        if errors:
            tags["feedback_errors"] = ",".join(errors)
        if pushed is not None:
            tags["online_store_push"] = "ok" if pushed else "failed"
        return {"meta": {"tags": tags, "routing": routing}, "data": {"names": [], "ndarray": []}}

    async def _feedback_node(
        self, node: GraphNodeSpec, fb: dict, routing: dict[str, int], errors: list[str]
    ) -> None:
        route = routing.get(node.name)
        if route is None or route == -1:
            children = node.children
        elif route == -2 or route >= len(node.children):
            children = []
        else:
            children = [node.children[route]]
        await asyncio.gather(*(self._feedback_node(c, fb, routing, errors) for c in children))
        if node.takes_feedback:
            try:
                await self._call(node, "send_feedback", fb)
            except NodeCallError as exc:
                errors.append(exc.node)

    # ------------------------------------------------------------------ health
    async def health(self) -> dict[str, bool]:
        nodes = self.graph.nodes()
        states = await asyncio.gather(*(self.transport.healthy(n) for n in nodes))
        return {n.name: ok for n, ok in zip(nodes, states, strict=True)}


def _first_number(resp: dict) -> int:
    data = resp.get("data") or {}
    values = data.get("ndarray") if "ndarray" in data else (data.get("tensor") or {}).get("values")
    while isinstance(values, list) and values:
        values = values[0]
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return int(values)
    raise NodeCallError("router", f"route response has no number: {resp}")
