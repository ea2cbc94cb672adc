"""What a cluster's ingress gateway (Istio / Ambassador in front of Seldon's executor) does, done by the
local executor's fronts before a message reaches the graph walk (``engine.py``, Seldon semantics only):

- authentication: the optional bearer token (``auth.py``, SECURITY.md O1); health and metrics stay open;
- body limits: size, JSON nesting depth, malformed JSON (``limits.py``) are a 400, never a 500 (O3);
- request shape: a predictions body must be a SeldonMessage with a valid ``jsonData`` request (a 400
  naming the field; on a cluster the graph's root node gives the same 400);
- the feedback shorthand: clients of the local executor may send ``truth`` as a bare
  ``{item_id, interaction_type}`` and ``feedback_id`` at the top level; Seldon's ``Feedback`` message
  has neither shape (``truth`` is a SeldonMessage, and there is no top-level id field), so they are
  rewritten to ``truth.jsonData`` here, as a client must send them to a cluster;
- ingress hygiene a browser cannot get around (``ingress_middleware``; SECURITY.md): the ``Host`` must be
  a loopback name or one of ``SMARTRECO_ALLOWED_HOSTS`` (421 otherwise: a DNS-rebinding page reaches
  127.0.0.1 under its own name), a request carrying a cross-site ``Origin`` is a 403 unless the origin is
  one of ``SMARTRECO_CORS_ORIGINS`` (which alone get CORS headers and preflight answers), and a POST body
  must be JSON or a form with a ``json`` field, as Seldon's executor reads it (415 otherwise: a cross-site
  "simple" ``text/plain`` POST needs no preflight, so the type is the first thing to refuse).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from inference_graph.executor.auth import OPEN_PATHS, bearer_ok
from inference_graph.executor.limits import loads_limited
from inference_graph.executor.metrics import ExecutorMetrics
from smartreco import settings
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
    if media_type(request.headers.get("Content-Type")) == FORM_TYPE:
        raw = form_message(raw)
    if not raw.strip():
        raise RequestValidationError("request body: empty; send a SeldonMessage with jsonData", "body")
    doc = loads_limited(raw)
    check_message_meta(doc)  # meta / request.meta / response.meta: an object, puid a bounded string
    return doc


#: names that always reach this host's loopback interface (a browser resolves them itself)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
FORM_TYPE = "application/x-www-form-urlencoded"
#: the form field Seldon's executor and Python wrapper read a form-encoded message from
FORM_FIELD = "json"
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"


def media_type(header: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json`` ("" when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


def is_json_type(mtype: str) -> bool:
    return mtype == "application/json" or (mtype.startswith("application/") and mtype.endswith("+json"))


def form_message(raw: bytes) -> bytes:
    """The JSON message of a form-encoded body (its single ``json`` field), as Seldon reads it."""
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestValidationError(f"request body: not a valid form ({type(exc).__name__})", "body") from None
    values = fields.get(FORM_FIELD)
    if not values or len(values) != 1:
        raise RequestValidationError(
            f"{FORM_FIELD}: form field required once (or send Content-Type: application/json)", FORM_FIELD
        )
    return values[0].encode()


def host_name(host_header: str) -> str:
    """The name of a ``Host`` header without its port, lower-case: ``[::1]:8000`` -> ``::1``."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name.rstrip(".")


def _csv(raw: str | Iterable[str] | None) -> frozenset[str]:
    items = raw.split(",") if isinstance(raw, str) else (raw or ())
    return frozenset(i.strip().lower().rstrip("/") for i in items if i and i.strip())


@dataclass(frozen=True)
class IngressPolicy:
    """Which ``Host`` names and browser origins the executor answers (loopback names always)."""

    hosts: frozenset[str] = LOOPBACK_HOSTS
    origins: frozenset[str] = frozenset()

    @classmethod
    def create(
        cls, hosts: str | Iterable[str] | None = None, origins: str | Iterable[str] | None = None
    ) -> IngressPolicy:
        """From the arguments, else ``SMARTRECO_ALLOWED_HOSTS`` / ``SMARTRECO_CORS_ORIGINS``."""
        extra = _csv(settings.ALLOWED_HOSTS.get() if hosts is None else hosts)
        allowed = _csv(settings.CORS_ORIGINS.get() if origins is None else origins)
        return cls(LOOPBACK_HOSTS | {host_name(h) for h in extra}, allowed)

    def host_ok(self, host_header: str | None) -> bool:
        # no Host header: not a browser (every browser sends one), nothing to rebind
        return host_header is None or host_name(host_header) in self.hosts

    def cors_ok(self, origin: str) -> bool:
        return origin.strip().lower().rstrip("/") in self.origins

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """No Origin (not a browser's cross-origin call), the page's own origin, or a configured one."""
        if origin is None or self.cors_ok(origin):
            return True
        parts = urlsplit(origin.strip().lower())
        return bool(parts.netloc) and host_header is not None and parts.netloc == host_header.strip().lower()


def ingress_middleware(
    policy: IngressPolicy, metrics: ExecutorMetrics, refuse: Callable[[int, str, str], web.Response]
) -> Any:
    """aiohttp middleware, outermost (before auth): Host, Origin/CORS and the POST body's Content-Type.
    ``refuse(code, info, reason)`` builds the error answer (Seldon's status shape)."""

    def refused(code: int, info: str, reason: str) -> web.Response:
        metrics.requests.labels("rest", "ingress", str(code)).inc()
        return refuse(code, info, reason)

    @web.middleware
    async def ingress(request: web.Request, handler: Any) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not policy.host_ok(host):
            # DNS rebinding: the attacker's name resolved to 127.0.0.1; never answer it
            return refused(421, "Host: not a name this executor serves (SMARTRECO_ALLOWED_HOSTS)", "MISDIRECTED")
        origin = request.headers.get("Origin")
        if not policy.origin_ok(origin, host):
            return refused(403, "Origin: cross-site requests are refused (SMARTRECO_CORS_ORIGINS)", "FORBIDDEN")
        cors = origin is not None and policy.cors_ok(origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not cors:  # a preflight from the page's own origin needs no CORS answer either
                return refused(403, "Origin: no CORS for this origin (SMARTRECO_CORS_ORIGINS)", "FORBIDDEN")
            resp: web.StreamResponse = web.Response(status=204)
        elif request.method == "POST" and not _body_type_ok(request.headers.get("Content-Type")):
            got = media_type(request.headers.get("Content-Type")) or "none"
            return refused(
                415, f"Content-Type: expected application/json or {FORM_TYPE}, got {got}", "UNSUPPORTED_MEDIA_TYPE"
            )
        else:
            resp = await handler(request)
        if cors:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            resp.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            resp.headers["Access-Control-Expose-Headers"] = "Retry-After"
            resp.headers["Access-Control-Max-Age"] = "600"
            resp.headers.add("Vary", "Origin")
        return resp

    return ingress


def _body_type_ok(header: str | None) -> bool:
    mtype = media_type(header)
    return is_json_type(mtype) or mtype == FORM_TYPE


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
