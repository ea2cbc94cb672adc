"""The event service's HTTP app (Starlette): Seldon request-logger CloudEvents in, durable records out.

Routes (one process: the event log has a single writer):

- ``POST /`` and ``POST /api/v1/events``: request-logger CloudEvents. A *response* event becomes one
  IMPRESSION record keyed by the graph's request id (a duplicate is acknowledged, not stored twice).
  *Request* events are dropped (counted): the response carries the user, context and the served list,
  which is all the impression needs. *Feedback* events are counted and logged as "feedback seen"; they
  are not the durable feedback (Seldon logs them before the graph applies them, best effort).
- ``POST /api/v1/feedback``: the durable feedback append of the graph's feedback path. 200 only after
  the record is on disk (fsync); a known id answers ``duplicate: true``; a storage failure answers 503
  with ``Retry-After`` and acknowledges nothing.
- ``GET /health/ping`` (alive), ``GET /health/ready`` (the log is writable), ``GET /metrics``
  (Prometheus), ``GET /api/v1/stats`` (counts, JSON).

Bad input is a 400 whose JSON names the field; nothing here answers a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from smartreco.errors import DataError
from smartreco.events.cloudevents import (
    EVENT_TYPES,
    FEEDBACK_SEEN,
    REQUEST,
    RESPONSE,
    InvalidEvent,
    impression_of,
    parse_event,
)
from smartreco.events.eventlog import EventLog
from smartreco.events.writer import GroupCommitWriter, LogClosing, WriterBusy
from smartreco.feedback.log import AppendResult
from smartreco.feedback.records import FEEDBACK, FEEDBACK_ID, IMPRESSION, VARIANT, make_record

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_S = 1
#: wire aliases of the feedback body (the record's own names are accepted as they are)
FEEDBACK_ALIASES = {"id": FEEDBACK_ID, "interaction": "interaction_type", "arm": VARIANT}


class TooLarge(DataError):
    pass


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "smartreco_events_received", "request-logger CloudEvents by type and outcome",
            ["type", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.appends = Counter(
            "smartreco_event_log_appends", "event-log appends by kind and outcome",
            ["kind", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.seconds = Histogram(
            "smartreco_event_append_seconds", "time to a durable append (queue + write + fsync)",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        # the SmartRecoFeedbackLogLag alert: traffic served but no feedback stored for a while
        self.last_feedback = Gauge(
            "smartreco_feedback_log_last_append_timestamp_seconds",
            "Unix time of the last durable feedback append (a new record, not a duplicate)", registry=self.registry,
        )  # fmt: skip


def _error(status: int, message: str, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, **extra)


def _unavailable(message: str, retry_after_s: float | None = None) -> JSONResponse:
    wait = max(1, math.ceil(retry_after_s)) if retry_after_s else RETRY_AFTER_S
    return _error(503, message, headers={"Retry-After": str(wait)})


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def feedback_payload(body: Mapping[str, Any]) -> dict[str, Any]:
    """The feedback body as ``make_record(FEEDBACK, ...)`` input: aliases mapped, an id required."""
    out: dict[str, Any] = {}
    if body.get("kind", FEEDBACK) != FEEDBACK:
        raise InvalidEvent("kind", f"must be {FEEDBACK!r} on this endpoint")
    for key, value in body.items():
        if key == "kind":
            continue  # a make_record() output sent as is
        name = FEEDBACK_ALIASES.get(key, key)
        if isinstance(value, dict | list) and name != "truth":
            raise InvalidEvent(key, "must be a single value, not an object or a list")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent(key, "must be a finite number")
        if name in out and out[name] != value:
            raise InvalidEvent(key, f"conflicts with {name}")
        out[name] = value
    if out.get(FEEDBACK_ID) in (None, ""):
        raise InvalidEvent("id", "is required (the feedback's idempotency key)")
    return out


def create_app(
    event_log: EventLog, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_pending: int = 8192
) -> Starlette:
    """The app over an open event log; the app closes the log when it shuts down. At most ``max_pending``
    appends wait for the disk; more are a 503 + Retry-After (back-pressure, never a silent loss)."""
    metrics = _Metrics()
    writer = GroupCommitWriter(event_log, max_pending=max_pending)
    counts = {"request_events_dropped": 0, "feedback_events_seen": 0, "empty_answers": 0}

    async def durable(kind: str, payload: dict[str, Any]) -> AppendResult | JSONResponse:
        """The durable append's result, or the 503 to answer (a storage fault never escapes as a 500)."""
        with metrics.seconds.labels(kind).time():
            try:
                res = await writer.append(kind, payload)
            except LogClosing:
                metrics.appends.labels(kind, "closing").inc()
                return _unavailable("the event service is shutting down")
            except WriterBusy as exc:  # back-pressure: the queue is full, nothing was taken
                metrics.appends.labels(kind, "busy").inc()
                return _unavailable(f"event log busy ({exc})", exc.retry_after_s)
            except Exception as exc:  # FeedbackLogUnavailable (with retry_after_s), OSError, ...
                metrics.appends.labels(kind, "failed").inc()
                return _unavailable(
                    f"event log append failed ({type(exc).__name__})", getattr(exc, "retry_after_s", None)
                )
        metrics.appends.labels(kind, "duplicate" if res.duplicate else "written").inc()
        if kind == FEEDBACK and not res.duplicate:
            metrics.last_feedback.set_to_current_time()
        return res

    async def events(request: Request) -> Response:
        try:
            event = parse_event(request.headers, await _body(request, max_body_bytes))
        except TooLarge as exc:
            metrics.events.labels("unknown", "too_large").inc()
            return _error(413, str(exc), "body")
        except InvalidEvent as exc:
            ce_type = request.headers.get("ce-type", "")
            # label values only from the known set: a client must not grow the metric's cardinality
            metrics.events.labels(ce_type if ce_type in EVENT_TYPES else "other", "invalid").inc()
            return _error(400, str(exc), exc.field)
        if event.type == REQUEST:
            counts["request_events_dropped"] += 1
            metrics.events.labels(event.type, "dropped").inc()
            return JSONResponse(
                {"id": event.id, "type": event.type, "stored": False, "reason": "request events are not stored"}
            )
        if event.type == FEEDBACK_SEEN:
            counts["feedback_events_seen"] += 1
            metrics.events.labels(event.type, "seen").inc()
            log.info("feedback seen: request id %s, node %s", event.request_id, event.model_id)
            return JSONResponse({"id": event.id, "type": event.type, "stored": False, "reason": "feedback seen"})
        try:
            payload = impression_of(event)
            if payload is not None:
                make_record(IMPRESSION, payload)  # validate before it joins a batch
        except InvalidEvent as exc:
            metrics.events.labels(RESPONSE, "invalid").inc()
            return _error(400, str(exc), exc.field)
        except DataError as exc:
            metrics.events.labels(RESPONSE, "invalid").inc()
            return _error(400, str(exc), "jsonData")
        if payload is None:
            counts["empty_answers"] += 1
            metrics.events.labels(RESPONSE, "empty").inc()
            return JSONResponse({"id": event.id, "type": event.type, "stored": False, "reason": "no items"})
        res = await durable(IMPRESSION, payload)
        if isinstance(res, Response):
            metrics.events.labels(RESPONSE, "unavailable").inc()
            return res
        metrics.events.labels(RESPONSE, "stored").inc()
        return JSONResponse(
            {"id": event.id, "type": event.type, "stored": True, "duplicate": res.duplicate,
             "request_id": res.id, "offset": len(event_log)}
        )  # fmt: skip

    async def feedback(request: Request) -> Response:
        try:
            raw = await _body(request, max_body_bytes)
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise InvalidEvent("body", "is not valid JSON (or nested too deeply)") from None
            if not isinstance(body, dict):
                raise InvalidEvent("body", "must be a JSON object")
            payload = feedback_payload(body)
            record = make_record(FEEDBACK, payload)
        except TooLarge as exc:
            return _error(413, str(exc), "body")
        except InvalidEvent as exc:
            metrics.appends.labels(FEEDBACK, "invalid").inc()
            return _error(400, str(exc), exc.field)
        except DataError as exc:
            metrics.appends.labels(FEEDBACK, "invalid").inc()
            return _error(400, str(exc), _field_of(str(exc)))
        res = await durable(FEEDBACK, payload)
        if isinstance(res, Response):
            return res
        return JSONResponse({"stored": True, "duplicate": res.duplicate, "id": record["id"], "offset": len(event_log)})

    async def ping(request: Request) -> Response:
        return PlainTextResponse("pong")

    async def ready(request: Request) -> Response:
        # Not ready only when appends cannot work here at all (log closed, storage gone). A log that is
        # unhealthy after a failed write stays ready: its next append is what repairs it, and with one
        # replica taking the pod out of the Service would only turn 503s into refused connections.
        try:
            ok = event_log.writable()
            health = event_log.health() if hasattr(event_log, "health") else {}
        except Exception as exc:
            ok, health = False, {"error": type(exc).__name__}
        return JSONResponse({"ready": ok, **health}, status_code=200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {"records": len(event_log), "batches": writer.batches, "appended": writer.records,
             "append_failures": writer.failures, "append_refused_busy": writer.refused, **counts}
        )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        writer.start()
        try:
            yield
        finally:
            await writer.close()
            event_log.close()

    app = Starlette(
        routes=[
            Route("/", events, methods=["POST"]),
            Route("/api/v1/events", events, methods=["POST"]),
            Route("/api/v1/feedback", feedback, methods=["POST"]),
            Route("/health/ping", ping, methods=["GET"]),
            Route("/health/ready", ready, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/api/v1/stats", stats, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.writer = writer
    app.state.event_log = event_log
    return app


def _field_of(message: str) -> str:
    """The field a ``make_record`` message is about (its messages name one; 'body' otherwise)."""
    if "unknown field" in message:
        return message.rsplit(" ", 1)[-1]
    for name in ("user_id", "item_id", "interaction_type", "reward", "items", "scores", "kind", "id"):
        if name in message:
            return name
    return "body"
