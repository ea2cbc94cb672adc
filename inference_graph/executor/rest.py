"""The executor's REST front (aiohttp): Seldon's predictions/feedback endpoints, health and metrics.

Bad input is a 400 in Seldon's error shape naming the field: malformed JSON, a body over the limit,
a missing/ill-typed field. A graph that cannot answer at all is a 503; a degraded answer is a 200.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_graph.executor.engine import GraphEngine, GraphUnavailable
from inference_graph.executor.transport import NodeCallError
from smartreco.schema import RequestValidationError

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20


def _status(code: int, info: str, reason: str) -> web.Response:
    body = {"status": {"code": code, "info": info, "reason": reason, "status": "FAILURE"}}
    return web.json_response(body, status=code)


async def _read_json(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise RequestValidationError(f"request body: larger than {limit} bytes", "body")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise RequestValidationError(f"request body: larger than {limit} bytes", "body")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise RequestValidationError("request body: empty; send a SeldonMessage with jsonData", "body")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestValidationError(f"request body: malformed JSON ({exc})", "body") from None


def make_app(engine: GraphEngine, max_body: int = MAX_BODY_BYTES) -> web.Application:
    app = web.Application(client_max_size=max_body * 4)
    m = engine.metrics

    async def handle(request: web.Request, endpoint: str, fn: Any) -> web.Response:
        started = time.perf_counter()
        code = 200
        try:
            payload = await _read_json(request, max_body)
            result = await fn(payload)
            return web.json_response(result, dumps=json.dumps)
        except RequestValidationError as exc:
            code = 400
            return _status(400, str(exc), "BAD_REQUEST")
        except (GraphUnavailable, NodeCallError) as exc:
            code = 503
            log.warning("%s failed: %s", endpoint, exc)
            return _status(503, str(exc), "GRAPH_UNAVAILABLE")
        except Exception as exc:  # never a traceback to the client
            code = 500
            log.exception("%s crashed", endpoint)
            return _status(500, f"{type(exc).__name__}: {exc}", "INTERNAL_ERROR")
        finally:
            m.requests.labels("rest", endpoint, str(code)).inc()
            m.request_seconds.labels("rest", endpoint).observe(time.perf_counter() - started)

    async def predictions(request: web.Request) -> web.Response:
        return await handle(request, "predictions", engine.predict)

    async def feedback(request: web.Request) -> web.Response:
        return await handle(request, "feedback", engine.feedback)

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
