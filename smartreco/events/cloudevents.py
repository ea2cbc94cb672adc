"""Seldon Core v1 request-logger CloudEvents: parse, validate, and turn a logged answer into an impression.

Seldon's executor (``executor/logger/worker.go``) posts each logged payload as a CloudEvent in HTTP
*binary* mode: the attributes are headers (``ce-id`` a fresh UUID per event, ``ce-type``,
``ce-source``, ``ce-specversion``, ``ce-time``, and the extensions ``ce-requestid`` = the puid,
``ce-modelid`` = the node name, ``ce-inferenceservicename``, ``ce-namespace``, ``ce-endpoint``,
``ce-protocol``) and the body is the node's SeldonMessage (``application/json``, or
``application/protobuf`` for gRPC traffic). Structured mode (``application/cloudevents+json``) is
accepted too, so other senders can post a whole event as one JSON document.

Every validation failure is an :class:`InvalidEvent` naming the field, which the app turns into a 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.feedback.records import MODEL_VERSION, REQUEST_ID, VARIANT

REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK_SEEN = "io.seldon.serving.feedback"
EVENT_TYPES: tuple[str, ...] = (REQUEST, RESPONSE, FEEDBACK_SEEN)
STRUCTURED = "application/cloudevents+json"
#: extension attributes Seldon's logger sets (lowercase, as CloudEvents requires)
EXTENSIONS: tuple[str, ...] = ("requestid", "modelid", "inferenceservicename", "namespace", "endpoint", "protocol")
MAX_ID_CHARS = 256


class InvalidEvent(DataError):
    """A CloudEvent (or the SeldonMessage in it) that cannot be used; ``field`` names what is wrong."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class LoggedEvent:
    """One request-logger event: its CloudEvent attributes and the decoded SeldonMessage."""

    id: str
    type: str
    source: str
    request_id: str | None  # ce-requestid: Seldon's puid
    model_id: str | None  # ce-modelid: the graph node that logged it
    time: str | None
    content_type: str
    message: dict[str, Any] | None  # the SeldonMessage (None: a body we could not decode, kept raw)
    extensions: dict[str, str] = field(default_factory=dict)


def _text(value: Any, name: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidEvent(name, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(name, f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent(name, f"longer than {MAX_ID_CHARS} characters")
    return value


def _decode_json(body: bytes, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidEvent(name, "is not valid JSON (or nested too deeply)") from None
    if not isinstance(doc, dict):
        raise InvalidEvent(name, f"must be a JSON object (a SeldonMessage), got {type(doc).__name__}")
    return doc


def _decode_protobuf(body: bytes) -> dict[str, Any]:
    """A gRPC SeldonMessage, parsed with seldon-core's protos where installed (the serving image)."""
    try:
        from google.protobuf import json_format
        from seldon_core.proto import prediction_pb2
    except ImportError:
        raise InvalidEvent("content-type", "application/protobuf needs seldon-core's protos (serving image)") from None
    msg = prediction_pb2.SeldonMessage()
    try:
        msg.ParseFromString(body)
    except Exception:  # protobuf's DecodeError has no stable import path across versions
        raise InvalidEvent("body", "is not a SeldonMessage (application/protobuf)") from None
    return json_format.MessageToDict(msg)


def _decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in ("application/protobuf", "application/x-protobuf", "application/grpc+proto"):
        return _decode_protobuf(body)
    if ctype in ("", "application/json", "text/json") or ctype.endswith("+json"):
        return _decode_json(body, "body")
    raise InvalidEvent("content-type", f"{ctype!r} is not supported (application/json or application/protobuf)")


def parse_event(headers: Mapping[str, str], body: bytes) -> LoggedEvent:
    """The event in one HTTP request (binary or structured mode); raises :class:`InvalidEvent`."""
    h = {k.lower(): v for k, v in headers.items()}
    content_type = h.get("content-type", "application/json")
    if content_type.split(";", 1)[0].strip().lower() == STRUCTURED:
        doc = _decode_json(body, "body")
        attrs = {str(k).lower(): v for k, v in doc.items() if k not in ("data", "data_base64")}
        data = doc.get("data")
        if data is not None and not isinstance(data, dict):
            raise InvalidEvent("data", "must be a JSON object (a SeldonMessage)")
        message = data
        content_type = str(attrs.get("datacontenttype") or "application/json")
    else:
        attrs = {k[3:]: v for k, v in h.items() if k.startswith("ce-")}
        message = _decode_body(body, content_type) if body else None
    prefix = "" if content_type == STRUCTURED else "ce-"
    event_type = _text(attrs.get("type"), f"{prefix}type", required=True)
    if event_type not in EVENT_TYPES:
        raise InvalidEvent(f"{prefix}type", f"{event_type!r} is not one of {', '.join(EVENT_TYPES)}")
    if message is None and event_type == RESPONSE:
        raise InvalidEvent("body", "a response event needs the SeldonMessage it logged")
    return LoggedEvent(
        id=_text(attrs.get("id"), f"{prefix}id", required=True),  # type: ignore[arg-type]
        type=event_type,
        source=_text(attrs.get("source"), f"{prefix}source", required=False) or "",
        request_id=_text(attrs.get("requestid"), f"{prefix}requestid", required=False),
        model_id=_text(attrs.get("modelid"), f"{prefix}modelid", required=False),
        time=_text(attrs.get("time"), f"{prefix}time", required=False),
        content_type=content_type,
        message=message,
        extensions={k: str(attrs[k]) for k in EXTENSIONS if attrs.get(k) not in (None, "")},
    )


_FRACTION = re.compile(r"(\.\d{6})\d+")


def event_time(event: LoggedEvent) -> str | None:
    """``ce-time`` as the record's UTC ISO timestamp (Go sends nanoseconds: cut to microseconds); None
    when absent (the log stamps the receipt time)."""
    if not event.time:
        return None
    try:
        when = datetime.fromisoformat(_FRACTION.sub(r"\1", event.time).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent("ce-time", f"{event.time!r} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise InvalidEvent("ce-time", f"{event.time!r} has no time zone")
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def request_id_of(event: LoggedEvent) -> str:
    """The graph's join key: ``meta.tags.request_id`` (set by the root node), then the answer's own
    ``jsonData.request_id``, then Seldon's puid (``ce-requestid``)."""
    msg = event.message or {}
    meta = msg.get("meta") if isinstance(msg.get("meta"), dict) else {}
    tags = meta.get("tags") if isinstance(meta.get("tags"), dict) else {}
    data = msg.get("jsonData") if isinstance(msg.get("jsonData"), dict) else {}
    for where, value in (
        ("meta.tags.request_id", tags.get(REQUEST_ID)),
        ("jsonData.request_id", data.get(REQUEST_ID)),
        ("ce-requestid", event.request_id),
    ):
        if value not in (None, ""):
            return _text(str(value), where, required=True)  # type: ignore[return-value]
    raise InvalidEvent("ce-requestid", "no request id (meta.tags.request_id, jsonData.request_id or ce-requestid)")


def impression_of(event: LoggedEvent) -> dict[str, Any] | None:
    """The impression record payload of a response event (``make_record(IMPRESSION, ...)`` input), or
    None when the answer holds no items (nothing was shown). Raises :class:`InvalidEvent`."""
    if event.type != RESPONSE:
        raise InvalidEvent("ce-type", f"only {RESPONSE} events are impressions")
    msg = event.message or {}
    data = msg.get("jsonData")
    if not isinstance(data, dict):
        raise InvalidEvent("jsonData", "a logged answer must carry jsonData (the recommendation response)")
    recs = data.get("recommendations")
    if not isinstance(recs, list):
        raise InvalidEvent("jsonData.recommendations", "must be a list")
    items, scores = [], []
    for i, rec in enumerate(recs):
        if not isinstance(rec, dict) or rec.get("item_id") in (None, ""):
            raise InvalidEvent(f"jsonData.recommendations[{i}].item_id", "is required")
        items.append(str(rec["item_id"]))
        score = rec.get("score")
        try:
            scores.append(float(score) if score is not None else float("nan"))
        except (TypeError, ValueError):
            raise InvalidEvent(f"jsonData.recommendations[{i}].score", "must be a number") from None
    if not items:
        return None
    user = data.get(C.USER_ID)
    if user in (None, "") or isinstance(user, bool | dict | list):
        raise InvalidEvent("jsonData.user_id", "is required (a string or integer id)")
    tags = (msg.get("meta") or {}).get("tags") or {}
    context = data.get("context") if isinstance(data.get("context"), dict) else {}
    payload: dict[str, Any] = {
        REQUEST_ID: request_id_of(event),
        C.USER_ID: str(user),
        VARIANT: data.get(VARIANT) or tags.get(VARIANT),
        MODEL_VERSION: data.get(MODEL_VERSION) or tags.get(MODEL_VERSION),
        C.CHANNEL: context.get(C.CHANNEL),
        C.DEVICE_TYPE: context.get(C.DEVICE_TYPE),
        C.SESSION_ID: context.get(C.SESSION_ID),
        "items": items,
        "scores": None if all(s != s for s in scores) else [0.0 if s != s else s for s in scores],
        "ts": event_time(event),
    }
    return {k: v for k, v in payload.items() if v is not None}


def seldon_headers(
    event_type: str,
    *,
    request_id: str,
    model_id: str,
    event_id: str | None = None,
    source: str = "http://localhost:8000/",
    deployment: str = "smartreco",
    namespace: str = "",
    predictor: str = "default",
    content_type: str = "application/json",
) -> dict[str, str]:
    """The HTTP headers Seldon's request logger sends with one binary-mode CloudEvent (worker.go
    ``sendCloudEvent``): what a stand-in executor, a test or a benchmark sends to look like Seldon."""
    import uuid

    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type must be one of {', '.join(EVENT_TYPES)}")
    return {
        "Content-Type": content_type,
        "ce-specversion": "1.0",
        "ce-id": event_id or str(uuid.uuid4()),
        "ce-type": event_type,
        "ce-source": source,
        "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "ce-requestid": request_id,
        "ce-modelid": model_id,
        "ce-inferenceservicename": deployment,
        "ce-namespace": namespace,
        "ce-endpoint": predictor,
        "ce-protocol": "seldon",
    }
