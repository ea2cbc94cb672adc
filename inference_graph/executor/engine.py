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

Online learning (the executor is the one process that owns the feedback log): every answer is
queued to the log as an impression before it leaves (write-behind: durable before any later feedback
is acknowledged, see ``_log_impression``) and every feedback is appended (fsync'd, idempotent on its
feedback id) before the 200; a new feedback then updates the in-memory recent history and
popularity counters (sent to the FeatureTransformer in ``jsonData.online`` of the next request),
invalidates the user's cached answers, goes back along the route to the bandit, and is pushed to the
online store. A retried feedback id is acknowledged again without repeating any of that.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from inference_graph.executor.feedback_writer import FeedbackWriter
from inference_graph.executor.graph import GraphNodeSpec, GraphSpec
from inference_graph.executor.metrics import ExecutorMetrics
from inference_graph.executor.transport import NodeCallError, Transport
from smartreco.errors import DataError
from smartreco.feedback import FEEDBACK, IMPRESSION, make_record
from smartreco.schema import RecommendationRequest, RequestValidationError, parse_or_raise
from smartreco.serving.cache import ResponseCache, cache_key
from smartreco.serving.online_learning import (
    NON_INTERACTIONS,
    ONLINE_KEY,
    OnlineLearner,
    feedback_id_of,
    interaction_of,
    truth_of,
)

DEFAULT_TIMEOUT_MS = 2000.0
log = logging.getLogger(__name__)


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
        writer: FeedbackWriter | None = None,
        learner: OnlineLearner | None = None,
        sync_impressions: bool = False,
    ) -> None:
        self.graph = graph
        self.transport = transport
        self.cache = cache
        self.metrics = metrics or ExecutorMetrics()
        self.default_timeout_ms = default_timeout_ms
        self.graph_version = graph_version
        # "puid:<id>" / "user:<id>" -> (user id, routing) of answers this executor served: feedback follows
        # these, never the client's meta.routing (SECURITY.md O2)
        self._routes: OrderedDict[str, tuple[str, dict[str, int]]] = OrderedDict()
        self._routes_max = recent_routes
        self._rng = random.Random()
        self.push_interaction: Any = None  # (user_id, item_id) -> None: the online store's push source
        self.writer = writer  # the durable feedback log (None: not logged, ids deduplicated in memory)
        # False: an answer leaves once its impression is queued (write-behind), not after its fsync; the
        # log's queue order still makes it durable before any feedback about it is acknowledged
        self.sync_impressions = sync_impressions
        self._impression_futures: set[asyncio.Future] = set()
        self.learner = learner if learner is not None else OnlineLearner()
        self._seen_feedback: OrderedDict[str, None] = OrderedDict()  # ids, when there is no log
        # user -> (puid, variant, model_version) of the last answer: attributes feedback sent without
        # the response (CLI) to the impression it is about, as the A/B analysis joins on request_id
        self._last_answer: OrderedDict[str, tuple[str, Any, Any]] = OrderedDict()

    # ------------------------------------------------------------------ predict
    async def predict(self, message: Any) -> dict:
        """Full answer (Seldon JSON message) for a request message; raises RequestValidationError."""
        request = validate_message(message)
        in_meta = message.get("meta") or {}
        walk = _Walk(puid=str(in_meta.get("puid") or uuid.uuid4().hex))
        user_id = request["user_id"]
        key = None
        if self.cache is not None:
            key = cache_key(user_id, request, self.graph_version)
            hit = self.cache.get(user_id, key)
            if hit is not None:
                self.metrics.cache.labels("hit").inc()
                out = {"jsonData": hit["jsonData"], "meta": {**hit["meta"], "puid": walk.puid}}
                out["meta"]["tags"] = {**hit["meta"].get("tags", {}), "cache": "hit"}
                self._remember(walk.puid, user_id, out["meta"].get("routing", {}))
                return await self._log_impression(walk.puid, request, out)
            self.metrics.cache.labels("miss").inc()
        generation = self.learner.history.generation(user_id)
        online = self.learner.online_block(user_id)
        # the live history/popularity block goes to the node that reads the request first: the feature
        # transformer, or under a root router (fused graph) the arm that the router passes it to
        takes_online = self.graph.root.type in ("TRANSFORMER", "ROUTER")
        root_data = {**request, ONLINE_KEY: online} if online and takes_online else request
        data = await self._node(self.graph.root, {"jsonData": root_data, "meta": {"puid": walk.puid}}, walk, request)
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
        self._remember(walk.puid, user_id, walk.routing)
        # a feedback that arrived while this answer was computed makes it stale: do not cache it
        if key is not None and not walk.degraded and generation == self.learner.history.generation(user_id):
            self.cache.put(user_id, key, out)
        return await self._log_impression(walk.puid, request, out)

    async def _log_impression(self, puid: str, request: dict, out: dict) -> dict:
        """The served list (the drift pipeline's prediction log and the A/B analysis' join key).

        Write-behind by default: queued before the answer leaves and durable before any later feedback
        is acknowledged (queue order), but the answer does not wait for its fsync (the single largest
        cost of a request on a busy disk, benchmarks/results/latency.md); a crash can lose the last
        few milliseconds of impressions, never an acknowledged feedback. ``sync_impressions`` waits.
        A broken log does not fail the recommendation: the metric counts it (and a synchronous answer
        is tagged ``impression_log``).
        """
        data = out.get("jsonData") if isinstance(out.get("jsonData"), dict) else {}
        user = str(request["user_id"])
        self._last_answer[user] = (puid, data.get("variant"), data.get("model_version"))
        self._last_answer.move_to_end(user)
        while len(self._last_answer) > self._routes_max:
            self._last_answer.popitem(last=False)
        if self.writer is None:
            return out
        recs = [r for r in data.get("recommendations") or [] if isinstance(r, dict) and r.get("item_id")]
        if not recs:
            return out
        ctx = request.get("context") or {}
        payload = {
            "request_id": puid,
            "user_id": request["user_id"],
            "variant": data.get("variant"),
            "model_version": data.get("model_version"),
            "channel": ctx.get("channel"),
            "device_type": ctx.get("device_type"),
            "session_id": ctx.get("session_id"),
            "items": [str(r["item_id"]) for r in recs],
            "scores": [float(r.get("score") or 0.0) for r in recs],
        }
        try:
            make_record(IMPRESSION, payload)  # a bad one must not fail the batch it would be written with
            fut = self.writer.submit(IMPRESSION, payload)
            if not self.sync_impressions:
                self._impression_futures.add(fut)
                fut.add_done_callback(self._impression_written)
                return out
            res = await fut
        except Exception as exc:
            self.metrics.log_appends.labels(IMPRESSION, "failed").inc()
            tags = {**(out["meta"].get("tags") or {}), "impression_log": f"failed: {type(exc).__name__}"}
            return {**out, "meta": {**out["meta"], "tags": tags}}  # a copy: the cached answer stays clean
        self.metrics.log_appends.labels(IMPRESSION, "duplicate" if res.duplicate else "written").inc()
        return out

    def _impression_written(self, fut: asyncio.Future) -> None:
        """Write-behind result: counted (and a failure logged), since the answer has already left."""
        self._impression_futures.discard(fut)
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            self.metrics.log_appends.labels(IMPRESSION, "failed").inc()
            log.warning("impression log append failed: %s", type(exc).__name__ if exc else "cancelled")
            return
        self.metrics.log_appends.labels(IMPRESSION, "duplicate" if fut.result().duplicate else "written").inc()

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
                walk.degraded.append(node.name)  # go on without user features (but with the overlay)
                data = {
                    "request": request,
                    "user": {},
                    "history": _overlay_history(data),
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
        results = await asyncio.gather(*(self._node(c, msg, walk, request) for c in children), return_exceptions=True)
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
            self._routes[key] = (str(user_id), dict(routing))
            self._routes.move_to_end(key)
        while len(self._routes) > self._routes_max:
            self._routes.popitem(last=False)

    async def feedback(self, message: Any) -> dict:
        """Log the feedback durably (idempotent on its id), then learn from it; answer with its id.

        Order matters: nothing is acknowledged before it is on disk, and the side effects (online
        history, popularity, cache, router arm, online-store push) run only for a first delivery.
        """
        if not isinstance(message, dict):
            raise RequestValidationError("request body: must be a JSON object")
        reward = message.get("reward", 0.0)
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not 0 <= reward <= 100:
            raise RequestValidationError("reward: must be a number within [0, 100]", "reward")
        response = message.get("response") or {}
        if not isinstance(response, dict):
            raise RequestValidationError("response: must be an object", "response")
        meta = response.get("meta") or {}
        if not isinstance(meta, dict):
            raise RequestValidationError("response.meta: must be an object", "response.meta")
        meta = dict(meta)
        if meta.get("puid") is not None and not isinstance(meta["puid"], str):
            raise RequestValidationError("response.meta.puid: must be a string", "response.meta.puid")
        request_doc = message.get("request") or {}
        req_data = (request_doc.get("jsonData") if isinstance(request_doc, dict) else None) or {}
        resp_data = response.get("jsonData") if isinstance(response.get("jsonData"), dict) else {}
        user_id = (req_data.get("user_id") if isinstance(req_data, dict) else None) or resp_data.get("user_id")
        if isinstance(user_id, float) and user_id.is_integer():
            user_id = int(user_id)
        user_id = None if user_id is None else str(user_id)
        truth = truth_of(message)
        interaction = interaction_of(user_id, truth)
        puid = meta.get("puid")
        if not puid and not resp_data and user_id is not None and user_id in self._last_answer:
            puid, variant, version = self._last_answer[user_id]  # "feedback on the user's last answer"
            resp_data = {"variant": variant, "model_version": version}
        claimed = _client_routing(meta.get("routing"))
        routing, known = self._recorded_route(puid, user_id, bool(meta.get("puid")))
        routing_ignored = claimed is not None and claimed != routing
        feedback_id = feedback_id_of(message, truth, puid, interaction)
        record = self._feedback_record(feedback_id, user_id, float(reward), puid, resp_data, interaction)
        duplicate = await self._append_feedback(record)
        tags: dict[str, Any] = {"feedback_id": feedback_id, "duplicate": duplicate, "routing_known": known}
        if routing_ignored:
            tags["routing_ignored"] = "client meta.routing disagrees with the route this executor served"
            self.metrics.routing_mismatch.inc()
        if duplicate:  # a retry: already acknowledged once, learn nothing twice
            self.metrics.feedback_duplicates.inc()
            return {"meta": {"tags": tags, "routing": routing}, "data": {"names": [], "ndarray": []}}

        if interaction is not None:
            self.learner.observe(interaction)
        elif user_id is not None:
            self.learner.history.bump(user_id)
        if user_id is not None and self.cache is not None:
            self.cache.invalidate_user(user_id)
        fb = {
            **{k: v for k, v in message.items() if k != "feedback_id"},
            "reward": float(reward),
            "response": {**response, "meta": {**meta, "routing": routing}},
        }
        raw_truth = message.get("truth")
        if isinstance(raw_truth, dict) and not {"data", "jsonData", "strData", "binData"} & raw_truth.keys():
            fb["truth"] = {"jsonData": raw_truth}  # Seldon's Feedback.truth is a SeldonMessage
        errors: list[str] = []
        pushed = await asyncio.gather(
            self._feedback_node(self.graph.root, fb, routing, errors), self._push(interaction)
        )
        self.metrics.feedback.inc()
        self.metrics.reward.inc(float(reward))
        if errors:
            tags["feedback_errors"] = ",".join(errors)
        if pushed[1] is not None:
            tags["online_store_push"] = "ok" if pushed[1] else "failed"
        return {"meta": {"tags": tags, "routing": routing}, "data": {"names": [], "ndarray": []}}

    def _recorded_route(self, puid: str | None, user_id: str | None, puid_given: bool) -> tuple[dict[str, int], bool]:
        """(routing, known): the route this executor served for ``puid`` (for the same user), else, when
        the client sent no puid at all (CLI feedback), the user's last route; else none ({}: Seldon's
        "all children", and a router counts no arm without its route)."""
        hit = self._routes.get(f"puid:{puid}") if puid else None
        if hit is None and not puid_given and user_id is not None:
            hit = self._routes.get(f"user:{user_id}")
        if hit is None or (user_id is not None and hit[0] != user_id):
            return {}, False
        return dict(hit[1]), True

    @staticmethod
    def _feedback_record(
        feedback_id: str,
        user_id: str | None,
        reward: float,
        puid: str | None,
        resp_data: dict,
        interaction: Any,
    ) -> dict:
        """The log payload, validated now so a bad one is a 400 and never poisons a write batch."""
        if user_id is None:
            raise RequestValidationError(
                "request.jsonData.user_id: required (or response.jsonData.user_id)", "request.jsonData.user_id"
            )
        payload: dict[str, Any] = {
            "feedback_id": feedback_id,
            "user_id": user_id,
            "reward": reward,
            "request_id": puid,
            "variant": resp_data.get("variant"),
            "model_version": resp_data.get("model_version"),
        }
        if interaction is not None and interaction.interaction_type not in NON_INTERACTIONS:
            payload["item_id"] = interaction.item_id
            payload["interaction_type"] = interaction.interaction_type
            for rec in resp_data.get("recommendations") or []:
                if isinstance(rec, dict) and str(rec.get("item_id")) == interaction.item_id:
                    payload["rank"], payload["score"] = rec.get("rank"), rec.get("score")
                    break
        payload = {k: v for k, v in payload.items() if v is not None}
        try:
            make_record(FEEDBACK, payload)
        except DataError as exc:
            raise RequestValidationError(str(exc), "feedback") from None
        return payload

    async def _append_feedback(self, payload: dict) -> bool:
        """True when this id was already acknowledged. Durable before it returns (when logging)."""
        fid = payload["feedback_id"]
        if self.writer is None:
            if fid in self._seen_feedback:
                return True
            self._seen_feedback[fid] = None
            while len(self._seen_feedback) > self._routes_max:
                self._seen_feedback.popitem(last=False)
            return False
        try:
            res = await self.writer.append(FEEDBACK, payload)
        except Exception as exc:  # not durable: no acknowledgement (the client retries the same id)
            self.metrics.log_appends.labels(FEEDBACK, "failed").inc()
            log.error("feedback log append failed: %s: %s", type(exc).__name__, exc)
            raise GraphUnavailable("feedback log: write failed, retry with the same feedback_id") from exc
        self.metrics.log_appends.labels(FEEDBACK, "duplicate" if res.duplicate else "written").inc()
        return res.duplicate

    async def _push(self, interaction: Any) -> bool | None:
        """Push to the online store's push source (so other executors see it too); None: not pushed."""
        if self.push_interaction is None or interaction is None or interaction.interaction_type in NON_INTERACTIONS:
            return None
        try:
            await asyncio.to_thread(self.push_interaction, interaction.user_id, interaction.item_id)
        except Exception:
            self.metrics.node_errors.labels("online-store", "push").inc()
            return False
        return True

    async def _feedback_node(self, node: GraphNodeSpec, fb: dict, routing: dict[str, int], errors: list[str]) -> None:
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


def _client_routing(value: Any) -> dict[str, int] | None:
    """The client's ``response.meta.routing`` checked for shape (a 400 naming it otherwise); it is only
    compared with the recorded route, never used to route feedback."""
    if value is None or value == {}:
        return None
    where = "response.meta.routing"
    if not isinstance(value, dict):
        raise RequestValidationError(f"{where}: must be an object {{node: child index}}", where)
    out = {}
    for node, route in value.items():
        if isinstance(route, bool) or not isinstance(route, (int, float)) or route != int(route):
            raise RequestValidationError(f"{where}.{str(node)[:64]}: must be an integer child index", where)
        out[str(node)] = int(route)
    return out


def _overlay_history(data: Any) -> list[str]:
    online = data.get(ONLINE_KEY) if isinstance(data, dict) else None
    return [str(i) for i in (online or {}).get("history") or []]


def _first_number(resp: dict) -> int:
    data = resp.get("data") or {}
    values = data.get("ndarray") if "ndarray" in data else (data.get("tensor") or {}).get("values")
    while isinstance(values, list) and values:
        values = values[0]
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return int(values)
    raise NodeCallError("router", f"route response has no number: {resp}")
