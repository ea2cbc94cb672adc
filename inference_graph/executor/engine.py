"""Walks the graph with Seldon Core v1 executor rules, asynchronously, with the deployment's timeout.

- a node's input step (MODEL: predict, TRANSFORMER or TRANSFORM_INPUT: transform_input), then its
  children, then an OUTPUT_TRANSFORMER's (or TRANSFORM_OUTPUT's) transform_output;
- a ROUTER's route picks the child (-1 all, -2 none); RANDOM_ABTEST uses ratioA; otherwise all
  children run in parallel and a COMBINER aggregates them (a non-combiner keeps the first output);
- ``meta.routing`` (node → child index) and ``meta.requestPath`` (node → image) are filled, node
  tags are merged and a router's own meta is dropped;
- feedback walks children first along ``response.meta.routing`` (all children when a node has no
  entry), then calls every MODEL/ROUTER (or SEND_FEEDBACK) node with the same message; a failing node
  fails the feedback before its parents are called; the answer is the root's own feedback reply;
- the request logger of nodes that have ``logger`` (``request_logger.py``).

Everything the product does with requests and feedback (request id, durable feedback append, bandit
reward, history, popularity, cache, online-store push) happens in the nodes, so Seldon's own executor
on a cluster gives the same effects. One thing is the local executor's own (README "local-only"): a
failed or slow child of a combiner (or a failed feature-transformer) is dropped and named in
``meta.tags.degraded`` instead of failing the request; on a cluster the fused graph's arm node does
that inside itself, and replicas carry availability.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from inference_graph.executor.graph import GraphNodeSpec, GraphSpec
from inference_graph.executor.metrics import ExecutorMetrics
from inference_graph.executor.request_logger import FEEDBACK, REQUEST, RESPONSE, RequestLogger
from inference_graph.executor.transport import NodeCallError, Transport
from smartreco.schema import RequestValidationError

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


#: the node methods whose reply carries the message the walk goes on with (route and feedback replies do not)
_ANSWERING = frozenset({"transform_input", "predict", "transform_output", "aggregate"})


class GraphEngine:
    def __init__(
        self,
        graph: GraphSpec,
        transport: Transport,
        *,
        metrics: ExecutorMetrics | None = None,
        default_timeout_ms: float | None = None,
        request_logger: RequestLogger | None = None,
    ) -> None:
        self.graph = graph
        self.transport = transport
        self.metrics = metrics or ExecutorMetrics()
        self.timeout_ms = float(default_timeout_ms or graph.timeout_ms("rest", DEFAULT_TIMEOUT_MS))
        self.request_logger = request_logger
        if request_logger is not None:
            request_logger.metrics = self.metrics  # its counts on the executor's /metrics
        self._rng = random.Random()

    # ------------------------------------------------------------------ predict
    async def predict(self, message: Any) -> dict:
        """Full answer (Seldon JSON message) for a request message; raises RequestValidationError."""
        if not isinstance(message, dict):
            raise RequestValidationError(f"request body: must be a JSON object, got {type(message).__name__}")
        in_meta = message.get("meta") or {}
        walk = _Walk(puid=str(in_meta.get("puid") or uuid.uuid4().hex))
        root_msg = {k: v for k, v in message.items() if k != "meta"}
        data = await self._node(self.graph.root, {**root_msg, "meta": {"puid": walk.puid}}, walk)
        if walk.degraded:
            walk.tags["degraded"] = ",".join(sorted(set(walk.degraded)))
            for name in set(walk.degraded):
                self.metrics.degraded.labels(name).inc()
        meta = {"puid": walk.puid, "tags": walk.tags, "routing": walk.routing, "requestPath": walk.request_path}
        return {"jsonData": data, "meta": meta}

    def _log(self, node: GraphNodeSpec, event_type: str, message: dict, puid: str) -> None:
        if self.request_logger is not None and node.logger:
            self.request_logger.log(node, event_type, message, puid)

    async def _call(self, node: GraphNodeSpec, method: str, message: dict) -> dict:
        started = time.perf_counter()
        timeout = self.timeout_ms / 1000.0
        try:
            resp = await asyncio.wait_for(self.transport.call(node, method, message), timeout)
            if method in _ANSWERING and resp.get("jsonData") is None:  # never a 200 whose answer is null
                raise NodeCallError(node.name, f"answered {method} without jsonData: {str(resp)[:200]}")
            return resp
        except TimeoutError:
            self.metrics.node_errors.labels(node.name, "timeout").inc()
            raise NodeCallError(node.name, f"timed out after {self.timeout_ms:.0f} ms") from None
        except NodeCallError as exc:
            self.metrics.node_errors.labels(node.name, str(exc.status or "unreachable")).inc()
            raise
        finally:
            self.metrics.node_seconds.labels(node.name, method).observe(time.perf_counter() - started)

    async def _logged_call(self, node: GraphNodeSpec, method: str, message: dict, walk: _Walk) -> dict:
        """A node call the request logger sees (input step, aggregate, output step)."""
        self._log(node, REQUEST, message, walk.puid)
        resp = await self._call(node, method, message)
        self._log(node, RESPONSE, resp, walk.puid)
        return resp

    def _absorb(self, node: GraphNodeSpec, resp: dict, walk: _Walk) -> None:
        walk.request_path[node.name] = node.image
        if node.type != "ROUTER":  # Seldon drops a router's own meta
            walk.tags.update((resp.get("meta") or {}).get("tags") or {})

    async def _node(self, node: GraphNodeSpec, message: dict, walk: _Walk) -> Any:
        data = message.get("jsonData")
        if node.does_input:
            method = "transform_input" if node.type == "TRANSFORMER" or "TRANSFORM_INPUT" in node.methods else "predict"
            try:
                resp = await self._logged_call(node, method, {"jsonData": data, "meta": {"puid": walk.puid}}, walk)
            except NodeCallError as exc:
                if exc.status == 400:
                    raise RequestValidationError(str(exc).split(": ", 1)[-1]) from None
                if node.type != "TRANSFORMER":
                    raise
                walk.degraded.append(node.name)  # local-only: go on without user features
                request = data if isinstance(data, dict) else {}
                data = {"request": request, "user": {}, "history": [], "known_user": False,
                        "context": request.get("context") or {}}
            else:
                self._absorb(node, resp, walk)
                data = resp.get("jsonData")
        if node.children:
            data = await self._children(node, data, walk)
        if node.type == "OUTPUT_TRANSFORMER" or "TRANSFORM_OUTPUT" in node.methods:
            resp = await self._logged_call(
                node, "transform_output", {"jsonData": data, "meta": {"puid": walk.puid}}, walk
            )
            self._absorb(node, resp, walk)
            data = resp.get("jsonData")
        return data

    async def _route(self, node: GraphNodeSpec, data: Any, walk: _Walk) -> int:
        if node.type == "ROUTER" or "ROUTE" in node.methods:
            try:
                resp = await self._call(node, "route", {"jsonData": data, "meta": {"puid": walk.puid}})
                route = _first_number(resp)
            except NodeCallError as exc:
                if exc.status == 400:
                    raise RequestValidationError(str(exc).split(": ", 1)[-1]) from None
                walk.degraded.append(node.name)  # local-only: a dead router must not stop traffic
                route = 0
            walk.request_path[node.name] = node.image
            return route
        if node.implementation == "RANDOM_ABTEST":
            return 0 if self._rng.random() < float(node.param("ratioA", 0.5)) else 1
        return -1

    async def _children(self, node: GraphNodeSpec, data: Any, walk: _Walk) -> Any:
        route = await self._route(node, data, walk)
        walk.routing[node.name] = route
        if route == -2:
            return data
        if route >= len(node.children):
            raise GraphUnavailable(f"{node.name}: route {route} but only {len(node.children)} children")
        children = node.children if route == -1 else [node.children[route]]
        msg = {"jsonData": data, "meta": {"puid": walk.puid}}
        if len(children) == 1:  # a router's pick: awaited in this task (gather would wrap it in a Task of its own)
            results = [await _settled(self._node(children[0], msg, walk))]
        else:
            results = await asyncio.gather(*(self._node(c, msg, walk) for c in children), return_exceptions=True)
        ok = []
        for child, res in zip(children, results, strict=True):
            if isinstance(res, RequestValidationError):
                raise res
            if isinstance(res, BaseException):
                walk.degraded.append(child.name)
            else:
                ok.append(res)
        if node.type == "COMBINER" or "AGGREGATE" in node.methods:
            inputs = ok or [data]  # nothing came back: let the combiner fall back (popularity)
            self._log(node, REQUEST, msg, walk.puid)
            resp = await self._call(node, "aggregate", {"seldonMessages": [{"jsonData": o} for o in inputs]})
            self._log(node, RESPONSE, resp, walk.puid)
            self._absorb(node, resp, walk)
            return resp.get("jsonData")
        if not ok:
            raise GraphUnavailable(f"{node.name}: every child failed ({', '.join(walk.degraded)})")
        return ok[0]

    # ------------------------------------------------------------------ feedback
    async def feedback(self, message: Any) -> dict:
        """Seldon's feedback walk: children first along ``response.meta.routing``, the same message to every
        node that takes feedback; a node's failure fails the feedback (its parents are not called, the client
        retries and the nodes' per-effect idempotency completes the rest). The answer is the root's reply."""
        if not isinstance(message, dict):
            raise RequestValidationError("request body: must be a JSON object")
        response = message.get("response") or {}
        meta = response.get("meta") if isinstance(response, dict) else None
        routing = (meta or {}).get("routing") if isinstance(meta, dict) else None
        routing = routing if isinstance(routing, dict) else {}
        puid = str((meta or {}).get("puid") or uuid.uuid4().hex) if isinstance(meta, dict) else uuid.uuid4().hex
        reply = await self._feedback_node(self.graph.root, message, routing, puid)
        self.metrics.feedback.inc()
        return reply if reply is not None else message

    async def _feedback_node(self, node: GraphNodeSpec, fb: dict, routing: dict, puid: str) -> dict | None:
        self._log(node, FEEDBACK, fb, puid)
        route = routing.get(node.name)
        if not isinstance(route, int) or isinstance(route, bool) or route == -1:
            children = node.children
        elif 0 <= route < len(node.children):
            children = [node.children[route]]
        else:
            children = []
        results = await asyncio.gather(
            *(self._feedback_node(c, fb, routing, puid) for c in children), return_exceptions=True
        )
        for res in results:
            if isinstance(res, BaseException):
                raise res
        if not node.takes_feedback:
            return None  # Seldon answers with the feedback message itself for such a node
        try:
            return await self._call(node, "send_feedback", fb)
        except NodeCallError as exc:
            if exc.status == 400:
                raise RequestValidationError(str(exc).split(": ", 1)[-1]) from None
            raise GraphUnavailable(
                f"feedback: node {exc.node} did not take it; retry with the same feedback_id"
            ) from exc

    # ------------------------------------------------------------------ health
    async def health(self) -> dict[str, bool]:
        nodes = self.graph.nodes()
        states = await asyncio.gather(*(self.transport.healthy(n) for n in nodes))
        return {n.name: ok for n, ok in zip(nodes, states, strict=True)}


async def _settled(coro: Any) -> Any:
    """``(await asyncio.gather(coro, return_exceptions=True))[0]`` without the Task gather creates for it: the
    result, or the exception the child raised. The fused graph's router picks one arm per request, and that Task
    (its scheduling and an extra turn of the event loop) was 0.034 -> 0.020 ms of the walk's own CPU per request
    (the fused graph over a stub transport). A cancellation of this task itself still propagates, as through
    gather."""
    try:
        return await coro
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return exc
    except Exception as exc:  # noqa: BLE001 - returned, as gather(return_exceptions=True) returns it
        return exc


def _first_number(resp: dict) -> int:
    data = resp.get("data") or {}
    values = data.get("ndarray") if "ndarray" in data else (data.get("tensor") or {}).get("values")
    while isinstance(values, list) and values:
        values = values[0]
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return int(values)
    raise NodeCallError("router", f"route response has no number: {resp}")
