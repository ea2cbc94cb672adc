"""What the graph nodes need around a request or a feedback, the same under Seldon's executor and ours:
the graph's request id, the shared node state, the event service client, the feedback reply.

Seldon's Python wrapper hands ``send_feedback_raw`` a ``Feedback`` proto and expects a ``SeldonMessage``
proto back (our in-process transport passes and takes dicts), and only the ``meta`` a raw method puts in
its reply reaches the client: so a feedback reply carries its tags itself.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from smartreco import settings
from smartreco.events.client import EventClient
from smartreco.serving.graph_state import GraphState, open_state

log = logging.getLogger(__name__)
#: a client-chosen request id we keep (Seldon's puid is free text; ours must be a safe join key)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def graph_request_id(meta: Any = None, request: dict | None = None) -> str:
    """The graph's join key for one answer: the client's ``meta.puid`` (or ``jsonData.request_id``) when it
    is a safe id, else a fresh uuid4 hex. Set by the node that reads the request first."""
    for value in ((meta or {}).get("puid") if isinstance(meta, dict) else None, (request or {}).get("request_id")):
        if isinstance(value, str) and _ID_RE.match(value):
            return value
    return uuid.uuid4().hex


def node_state() -> GraphState:
    """The state every node of the pod (every worker process) shares: ``SMARTRECO_GRAPH_STATE``; with
    ``SMARTRECO_STATE=redis://...`` the state every replica shares."""
    return open_state(settings.STATE.get() or settings.GRAPH_STATE.get())


def event_client() -> EventClient | None:
    """The event service's client (``SMARTRECO_EVENTS_URL``); None when no event service is configured."""
    url = settings.EVENTS_URL.get()
    if not url:
        return None
    return EventClient(url, timeout_s=settings.EVENTS_TIMEOUT_S.get())


def online_pusher() -> Any:
    """``(user_id, item_id) -> None`` through the online store's push source; None without the client."""
    try:
        from smartreco.features.online_client import OnlineFeatureClient
    except ImportError:
        return None
    client = OnlineFeatureClient()
    return lambda user_id, item_id: client.push_interaction(user_id, item_id)


def feedback_reply(request: Any, tags: dict[str, Any]) -> Any:
    """The node's answer to a feedback: a ``SeldonMessage`` with ``meta.tags`` (a proto when the wrapper
    sent a proto, else a dict)."""
    doc = {"meta": {"tags": tags}, "data": {"names": [], "ndarray": []}}
    if isinstance(request, dict):
        return doc
    from google.protobuf import json_format
    from seldon_core.proto import prediction_pb2

    return json_format.ParseDict(doc, prediction_pb2.SeldonMessage())


def append_feedback(message: Any, state: GraphState, client: EventClient | None) -> dict[str, Any]:
    """The durable append of one feedback (the first node Seldon calls does it): the record is on the event
    service's disk when this returns; EventServiceUnavailable (no acknowledgement: the client retries with
    the same id) or RequestValidationError otherwise. Returns the reply tags."""
    from smartreco.events.client import FeedbackRejected
    from smartreco.schema import RequestValidationError
    from smartreco.serving.graph_feedback import attribute, feedback_record, parse_feedback

    event = parse_feedback(message)
    record = feedback_record(event, attribute(event, state))
    tags: dict[str, Any] = {"feedback_id": event.feedback_id, "request_id": record.get("request_id")}
    if client is None:
        tags["event_log"] = "off"  # no event service configured (library/test use): nothing is logged
        return tags
    try:
        ack = client.append_feedback(record)
    except FeedbackRejected as exc:
        raise RequestValidationError(f"{exc.field or 'feedback'}: {exc}", exc.field or "feedback") from None
    tags.update(event_log="stored", duplicate=ack.duplicate)
    return tags


class AnswerCache:
    """Short-lived answers per (user, request shape, model version, the user's state generation): a feedback
    bumps the generation in the shared state, so no process serves a stale answer after it, and a node
    process's own LRU (or a shared Redis) holds only answers that are still current."""

    def __init__(self, spec: str, ttl_s: float) -> None:
        from smartreco.serving.cache import open_cache

        if spec == "local" and settings.STATE.get():
            spec = settings.STATE.get()  # one cache for every replica
        self.cache = None if spec in ("off", "", "none") else open_cache(spec, float(ttl_s))

    def key(self, state: GraphState, message: dict, version: str) -> str | None:
        """Over what shapes the answer: the request (not its id), history, live block; None: cache off."""
        if self.cache is None:
            return None
        from smartreco.serving.cache import cache_key

        request = {k: v for k, v in message["request"].items() if k != "request_id"}
        user = str(request["user_id"])
        online = message.get("online") if isinstance(message.get("online"), dict) else {}
        shape = {
            "request": request,
            "history": message.get("history"),
            "known_user": message.get("known_user"),
            # which items are hot, not their decayed counts (those change every second; the TTL bounds them)
            "boost": sorted(online.get("popularity_boost") or {}),
        }
        return cache_key(user, shape, f"{version}|gen{state.generation(user)}")

    def get(self, user_id: str, key: str | None) -> dict | None:
        return None if key is None else self.cache.get(user_id, key)

    def put(self, user_id: str, key: str | None, answer: dict) -> None:
        if key is not None:
            self.cache.put(user_id, key, answer)
