"""What a cluster's ingress gateway (Istio / Ambassador in front of Seldon's executor) does, done by the
local executor's fronts before a message reaches the graph walk (``engine.py``, Seldon semantics only):

- authentication: the optional bearer token (``auth.py``, SECURITY.md O1); health and metrics stay open;
- body limits: size, JSON nesting depth, malformed JSON (``limits.py``) are a 400, never a 500 (O3);
- request shape: a predictions body must be a SeldonMessage with a valid ``jsonData`` request (a 400
  naming the field; on a cluster the graph's root node gives the same 400);
- the feedback shorthand: clients of the local executor may send ``truth`` as a bare
  ``{item_id, interaction_type}`` and ``feedback_id`` at the top level; Seldon's ``Feedback`` message
  has neither shape (``truth`` is a SeldonMessage, and there is no top-level id field), so they are
  rewritten to ``truth.jsonData`` here, as a client must send them to a cluster.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inference_graph.executor.auth import OPEN_PATHS, bearer_ok
from inference_graph.executor.limits import loads_limited
from inference_graph.executor.metrics import ExecutorMetrics
from smartreco.schema import RecommendationRequest, RequestValidationError, check_message_meta, parse_or_raise

MAX_BODY_BYTES = 1 << 20
_MESSAGE_KEYS = {"data", "jsonData", "strData", "binData"}


async def read_json(request: web.Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request body as JSON within the size and depth limits; RequestValidationError otherwise."""
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
    doc = loads_limited(raw)
    check_message_meta(doc)  # meta / request.meta / response.meta: an object, puid a bounded string
    return doc


def auth_middleware(token: str | None, metrics: ExecutorMetrics, unauthorized: Any) -> Any:
    """aiohttp middleware: ``Authorization: Bearer <token>`` outside health/metrics (401 otherwise)."""

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in OPEN_PATHS or bearer_ok(request.headers.get("Authorization"), token):
            return await handler(request)
        metrics.requests.labels("rest", "auth", "401").inc()
        return unauthorized()

    return auth


def check_prediction(message: Any) -> dict:
    """A predictions body: a SeldonMessage whose ``jsonData`` is a valid request (a 400 naming the field).
    The message goes on unchanged: the graph's root node reads the request itself."""
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
        parse_or_raise(RecommendationRequest, data)
    except RequestValidationError as exc:
        raise RequestValidationError(f"jsonData.{exc}", f"jsonData.{exc.field}") from None
    return message


def normalize_feedback(message: Any) -> Any:
    """The local shorthand of a feedback rewritten into Seldon's ``Feedback`` shape (see the module doc)."""
    if not isinstance(message, dict):
        raise RequestValidationError("request body: must be a JSON object")
    out = dict(message)
    truth = out.get("truth")
    if isinstance(truth, dict) and not _MESSAGE_KEYS & truth.keys():
        truth = {"jsonData": truth}
    fid = out.pop("feedback_id", None)
    if fid is not None:
        truth = {} if truth is None else truth
        if not isinstance(truth, dict) or not isinstance(truth.get("jsonData", {}), dict):
            raise RequestValidationError("truth: must be an object when feedback_id is given", "truth")
        inner = dict(truth.get("jsonData") or {})
        inner.setdefault("feedback_id", fid)
        truth = {**truth, "jsonData": inner}
    if truth is not None:
        out["truth"] = truth
    return out
