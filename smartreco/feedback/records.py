"""What one feedback-log record is: a served recommendation (impression) or a user's feedback on it.

Records are plain JSON-able dicts so the log needs neither pydantic nor the serving stack; the
canonical column names come from :mod:`smartreco.data.columns`, the log-only ones are defined here.
A record's ``id`` is its idempotency key: a retry with the same id is acknowledged, not stored twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from smartreco.data import columns as C
from smartreco.errors import DataError

# log-only columns (the canonical ones live in smartreco.data.columns)
EVENT = "event"
FEEDBACK_ID = "feedback_id"
REQUEST_ID = "request_id"
VARIANT = "variant"
MODEL_VERSION = "model_version"
REWARD = "reward"

FEEDBACK = "feedback"
IMPRESSION = "impression"
KINDS: tuple[str, ...] = (FEEDBACK, IMPRESSION)

#: fields a record may carry besides kind/id/ts (anything else is rejected: a typo must not vanish silently)
_FEEDBACK_FIELDS = {
    C.USER_ID,
    C.ITEM_ID,
    C.INTERACTION_TYPE,
    C.SESSION_ID,
    C.CHANNEL,
    C.DEVICE_TYPE,
    C.RATING,
    C.DURATION,
    REQUEST_ID,
    VARIANT,
    MODEL_VERSION,
    REWARD,
    C.RANK,
    C.SCORE,
}
_IMPRESSION_FIELDS = {
    C.USER_ID,
    C.SESSION_ID,
    C.CHANNEL,
    C.DEVICE_TYPE,
    REQUEST_ID,
    VARIANT,
    MODEL_VERSION,
    "items",
    "scores",
}


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _content_id(kind: str, body: dict[str, Any]) -> str:
    """A deterministic id for a record sent without one, so a blind retry is still idempotent."""
    stable = {k: body.get(k) for k in sorted(body) if k not in ("ts", "id")}
    digest = hashlib.sha256(json.dumps([kind, stable], sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind[:3]}-{digest[:32]}"


def _as_str_id(value: Any, field: str) -> str:
    if isinstance(value, bool) or value is None:
        raise DataError(f"feedback record: {field} must be a string or integer id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def make_record(kind: str, payload: Any) -> dict[str, Any]:
    """Validate ``payload`` (a dict or a pydantic model such as ``schema.Feedback``) into a log record.

    Feedback needs ``user_id`` and, unless it is a bare reward, ``item_id`` + ``interaction_type``
    (a nested ``truth`` object as in the Seldon feedback message is accepted). Impressions need
    ``user_id`` and a list ``items``. The id is ``feedback_id`` / ``request_id`` or a content hash.
    """
    if kind not in KINDS:
        raise DataError(f"feedback record: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    body = (
        payload.model_dump(mode="json", exclude_none=True)
        if hasattr(payload, "model_dump")
        else dict(payload)
    )
    body = {k: v for k, v in body.items() if v is not None}
    truth = body.pop("truth", None)
    if isinstance(truth, dict):
        body.setdefault(C.ITEM_ID, truth.get(C.ITEM_ID))
        body.setdefault(C.INTERACTION_TYPE, truth.get(C.INTERACTION_TYPE))
    given_id = body.pop(FEEDBACK_ID, None) if kind == FEEDBACK else body.get(REQUEST_ID)
    body.pop("id", None)
    ts = body.pop("ts", None) or body.pop(C.TIMESTAMP, None)
    if C.USER_ID not in body:
        raise DataError(f"{kind} record: user_id is required")
    body[C.USER_ID] = _as_str_id(body[C.USER_ID], C.USER_ID)
    allowed = _FEEDBACK_FIELDS if kind == FEEDBACK else _IMPRESSION_FIELDS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise DataError(f"{kind} record: unknown field(s) {', '.join(unknown)}")
    if kind == FEEDBACK:
        if C.ITEM_ID in body:
            body[C.ITEM_ID] = _as_str_id(body[C.ITEM_ID], C.ITEM_ID)
        itype = body.get(C.INTERACTION_TYPE)
        if itype is not None and itype not in C.INTERACTION_TYPES:
            raise DataError(
                f"feedback record: interaction_type {itype!r} not in {', '.join(C.INTERACTION_TYPES)}"
            )
        if C.ITEM_ID in body and itype is None:
            raise DataError("feedback record: interaction_type is required with item_id")
        if REWARD in body:
            try:
                body[REWARD] = float(body[REWARD])
            except (TypeError, ValueError):
                raise DataError(f"feedback record: reward must be a number, got {body[REWARD]!r}") from None
        elif C.ITEM_ID not in body:
            raise DataError("feedback record: needs item_id + interaction_type or a reward")
    else:
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise DataError("impression record: items must be a non-empty list of item ids")
        body["items"] = [_as_str_id(i, "items[]") for i in items]
        scores = body.get("scores")
        if scores is not None and (not isinstance(scores, list) or len(scores) != len(items)):
            raise DataError("impression record: scores must be a list as long as items")
    rid = _as_str_id(given_id, "id") if given_id is not None else _content_id(kind, body)
    if isinstance(ts, datetime):
        ts = ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {"kind": kind, "id": rid, "ts": str(ts) if ts else utc_now_iso(), **body}


def record_key(record: dict[str, Any]) -> str:
    """Idempotency key: ids are unique per kind (a feedback id may equal a request id)."""
    return f"{record['kind']}:{record['id']}"
