"""The executor's REST front (aiohttp): Seldon's predictions/feedback endpoints, health and metrics.
The ingress duties (auth, body limits, request shape) are ``gateway.py``'s.

Bad input is a 400 in Seldon's error shape naming the field: malformed or too deeply nested JSON, a
body over the limit, a missing/ill-typed field. A graph that cannot answer at all (a node down, or slower
than the deployment's timeout) is a 503 with ``Retry-After``; a degraded answer is a 200. An unexpected
error is a 500 with a fixed message and an error id; the detail goes to the log only (SECURITY.md O3).
With a token configured every endpoint but health/metrics needs ``Authorization: Bearer <token>`` (401
otherwise, O1). Before anything else the ingress checks of
``gateway.py`` run: Host (421), cross-site Origin (403), POST Content-Type (415), CORS.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_graph.executor.engine import GraphEngine, GraphUnavailable
from inference_graph.executor.gateway import (
    MAX_BODY_BYTES,
    IngressPolicy,
    auth_middleware,
    check_prediction,
    ingress_middleware,
    normalize_feedback,
    read_json,
)
from inference_graph.executor.transport import NodeCallError
from smartreco.schema import RequestValidationError

log = logging.getLogger(__name__)

#: seconds a client waits before retrying a 503 (a node down or slower than the deployment's timeout)
RETRY_AFTER_S = 1


def public_reason(exc: Exception) -> str:
    """What a client may see of a 503: which node, not its address or the library's error text."""
    if isinstance(exc, NodeCallError):
        return f"graph unavailable: node {exc.node} did not answer"
    return f"graph unavailable: {exc}"  # GraphUnavailable messages are written for clients


def _status(code: int, info: str, reason: str) -> web.Response:
    body = {"status": {"code": code, "info": info, "reason": reason, "status": "FAILURE"}}
    return web.json_response(body, status=code)


def make_app(
    engine: GraphEngine,
    max_body: int = MAX_BODY_BYTES,
    token: str | None = None,
    ingress: IngressPolicy | None = None,
) -> web.Application:
    """The REST app; ``token`` (None: auth off) is required as a bearer token outside health/metrics;
    ``ingress`` (default: from the settings) names the Host names and CORS origins it answers."""

    def unauthorized() -> web.Response:
        resp = _status(401, "Authorization: missing or invalid bearer token", "UNAUTHENTICATED")
        resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    auth = auth_middleware(token, engine.metrics, unauthorized)
    gate = ingress_middleware(ingress or IngressPolicy.create(), engine.metrics, _status)
    app = web.Application(client_max_size=max_body * 4, middlewares=[gate, auth] if token else [gate])
    m = engine.metrics

    async def handle(request: web.Request, endpoint: str, fn: Any) -> web.Response:
        started = time.perf_counter()
        code = 200
        try:
            payload = await read_json(request, max_body)
            result = await fn(payload)
            return web.json_response(result, dumps=json.dumps)
        except RequestValidationError as exc:
            code = 400
            return _status(400, str(exc), "BAD_REQUEST")
        except (GraphUnavailable, NodeCallError) as exc:
            code = 503
            log.warning("%s failed: %s", endpoint, exc)
            resp = _status(503, public_reason(exc), "GRAPH_UNAVAILABLE")
            resp.headers["Retry-After"] = str(RETRY_AFTER_S)  # nothing was acknowledged: retry, same id
            return resp
        except Exception:  # never a traceback or exception text to the client: an id to find the log line
            code = 500
            error_id = uuid.uuid4().hex[:12]
            log.exception("%s crashed (error id %s)", endpoint, error_id)
            return _status(500, f"internal error (error id {error_id})", "INTERNAL_ERROR")
        finally:
            m.requests.labels("rest", endpoint, str(code)).inc()
            m.request_seconds.labels("rest", endpoint).observe(time.perf_counter() - started)

    async def predict(message: Any) -> dict:
        return await engine.predict(check_prediction(message))

    async def give_feedback(message: Any) -> dict:
        return await engine.feedback(normalize_feedback(message))

    async def predictions(request: web.Request) -> web.Response:
        return await handle(request, "predictions", predict)

    async def feedback(request: web.Request) -> web.Response:
        return await handle(request, "feedback", give_feedback)

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def status(_: web.Request) -> web.Response:
        nodes = await engine.health()
        ok = all(nodes.values())
        return web.json_response(
            {"status": "ok" if ok else "degraded", "nodes": nodes}, status=200 if ok else 503
        )

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_post("/api/v1.0/predictions", predictions)
    app.router.add_post("/api/v0.1/predictions", predictions)
    app.router.add_post("/api/v1.0/feedback", feedback)
    app.router.add_post("/api/v0.1/feedback", feedback)
    # the ingress paths a cluster exposes (SeldonClient's gateway="seldon" posts here)
    app.router.add_post("/seldon/{namespace}/{deployment}/api/v1.0/predictions", predictions)
    app.router.add_post("/seldon/{namespace}/{deployment}/api/v1.0/feedback", feedback)
    app.router.add_get("/health/ping", ping)
    app.router.add_get("/ready", status)
    app.router.add_get("/health/status", status)
    app.router.add_get("/metrics", metrics)
    return app
