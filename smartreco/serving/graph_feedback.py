"""One feedback as the graph nodes read it, and its effects, each idempotent on its own key.

Seldon's executor routes ``/api/v1.0/feedback`` by ``response.meta.routing`` and calls the nodes children
first, each with the same message; there is no executor of ours on a cluster to hold a feedback log or
counters. So every node that takes feedback parses the message the same way (:func:`parse_feedback`,
a 400 naming the field when it is bad), derives the same feedback id, and applies only its own effects:

- ``append``: the durable record, through the event service (idempotent on the feedback id there; the
  node that Seldon calls first does it, so a node's 200 never precedes durability);
- ``history`` / ``popularity`` / ``cache``: recent items, live popularity and the user's cache
  generation in :class:`~smartreco.serving.graph_state.GraphState` (exactly once each);
- ``push``: the interaction to the online store's push source (at least once);
- ``reward``: the router's bandit arm (in ``inference_graph/ab_router.py``).

A retried feedback id runs only the effects an earlier attempt did not finish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smartreco.errors import DataError
from smartreco.feedback.records import FEEDBACK, make_record
from smartreco.schema import RequestValidationError
from smartreco.serving.graph_state import GraphState, Served
from smartreco.serving.online_learning import (
    NON_INTERACTIONS,
    NOT_HISTORY,
    Interaction,
    feedback_id_of,
    interaction_of,
    truth_of,
)

log = logging.getLogger(__name__)
MAX_REWARD = 100.0


@dataclass(frozen=True)
class FeedbackEvent:
    feedback_id: str
    user_id: str
    reward: float
    request_id: str | None  # the answer it is about, as the message names it (None: not named)
    interaction: Interaction | None
    variant: str | None = None
    model_version: str | None = None
    rank: int | None = None
    score: float | None = None
    client_routing: dict[str, int] | None = None


def as_dict(message: Any) -> dict:
    """The feedback as a JSON dict: Seldon's wrapper hands ``send_feedback_raw`` a ``Feedback`` proto."""
    if isinstance(message, dict):
        return message
    if hasattr(message, "DESCRIPTOR"):
        from google.protobuf import json_format

        return json_format.MessageToDict(message)
    raise RequestValidationError(f"request body: must be a JSON object, got {type(message).__name__}")


def _client_routing(value: Any) -> dict[str, int] | None:
    """``response.meta.routing`` checked for shape (a 400 naming it otherwise)."""
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


def _str_or_none(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 128:
        raise RequestValidationError(f"{where}: must be a string of at most 128 characters", where)
    return value


def request_id_of(response: dict) -> str | None:
    """The answer's request id: ``meta.tags.request_id`` (set by the root node), ``jsonData.request_id``
    (echoed by the ranking node), else Seldon's ``meta.puid``."""
    meta = response.get("meta") or {}
    if not isinstance(meta, dict):
        raise RequestValidationError("response.meta: must be an object", "response.meta")
    tags = meta.get("tags") if isinstance(meta.get("tags"), dict) else {}
    data = response.get("jsonData") if isinstance(response.get("jsonData"), dict) else {}
    for where, value in (
        ("response.meta.tags.request_id", tags.get("request_id")),
        ("response.jsonData.request_id", data.get("request_id")),
        ("response.meta.puid", meta.get("puid")),
    ):
        found = _str_or_none(value, where)
        if found:
            return found
    return None


def _content_id(parts: dict) -> str:
    """A feedback sent with no id and about no named answer: an id from its content, so every node (and a
    blind retry) derives the same one. Two identical such feedbacks are one: send ``feedback_id`` to count both."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"fb-{uuid.UUID(digest[:32])}"


def parse_feedback(message: Any) -> FeedbackEvent:
    """The feedback every node reads the same way; RequestValidationError naming the bad field."""
    message = as_dict(message)
    reward = message.get("reward", 0.0)
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not 0 <= reward <= MAX_REWARD:
        raise RequestValidationError(f"reward: must be a number within [0, {MAX_REWARD:g}]", "reward")
    response = message.get("response") or {}
    if not isinstance(response, dict):
        raise RequestValidationError("response: must be an object", "response")
    request_id = request_id_of(response)
    routing = _client_routing((response.get("meta") or {}).get("routing"))
    request_doc = message.get("request") or {}
    req_data = (request_doc.get("jsonData") if isinstance(request_doc, dict) else None) or {}
    resp_data = response.get("jsonData") if isinstance(response.get("jsonData"), dict) else {}
    user_id = (req_data.get("user_id") if isinstance(req_data, dict) else None) or resp_data.get("user_id")
    if isinstance(user_id, float) and user_id.is_integer():
        user_id = int(user_id)  # gRPC Struct numbers arrive as floats
    if user_id is None or isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or str(user_id) == "":
        raise RequestValidationError(
            "request.jsonData.user_id: required (or response.jsonData.user_id)", "request.jsonData.user_id"
        )
    user_id = str(user_id)
    truth = truth_of(message)
    interaction = interaction_of(user_id, truth)
    if message.get("feedback_id", truth.get("feedback_id")) is not None or (request_id and interaction):
        feedback_id = feedback_id_of(message, truth, request_id, interaction)
    else:
        feedback_id = _content_id(
            {"user": user_id, "reward": float(reward), "request_id": request_id,
             "truth": {k: truth.get(k) for k in ("item_id", "interaction_type")}}
        )
    rank = score = None
    if interaction is not None:
        for rec in resp_data.get("recommendations") or []:
            if isinstance(rec, dict) and str(rec.get("item_id")) == interaction.item_id:
                rank, score = rec.get("rank"), rec.get("score")
                break
    return FeedbackEvent(
        feedback_id=feedback_id,
        user_id=user_id,
        reward=float(reward),
        request_id=request_id,
        interaction=interaction,
        variant=_str_or_none(resp_data.get("variant"), "response.jsonData.variant"),
        model_version=_str_or_none(resp_data.get("model_version"), "response.jsonData.model_version"),
        rank=int(rank) if isinstance(rank, (int, float)) and not isinstance(rank, bool) else None,
        score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
        client_routing=routing,
    )


def attribute(event: FeedbackEvent, state: GraphState) -> Served | None:
    """The answer this feedback is about, as the graph recorded it: by its request id (for the same user),
    else, when the message names no answer (CLI feedback), the user's last one; None when unknown or when
    the named answer went to someone else (a replayed response must not count)."""
    served = state.served(event.request_id) if event.request_id else state.last_served(event.user_id)
    if served is None or served.user_id != event.user_id:
        return None
    return served


def feedback_record(event: FeedbackEvent, served: Served | None) -> dict[str, Any]:
    """The event-log record (``smartreco.feedback.records``), validated so a bad one is a 400 here."""
    payload: dict[str, Any] = {
        "feedback_id": event.feedback_id,
        "user_id": event.user_id,
        "reward": event.reward,
        "request_id": event.request_id or (served.request_id if served else None),
        "variant": event.variant or (served.variant if served else None),
        "model_version": event.model_version or (served.model_version if served else None),
    }
    it = event.interaction
    if it is not None and it.interaction_type not in NON_INTERACTIONS:
        payload.update(item_id=it.item_id, interaction_type=it.interaction_type, rank=event.rank, score=event.score)
    payload = {k: v for k, v in payload.items() if v is not None}
    try:
        record = make_record(FEEDBACK, payload)
    except DataError as exc:
        raise RequestValidationError(str(exc), "feedback") from None
    return {k: v for k, v in record.items() if k != "kind"}


class FeedbackEffects:
    """The feedback effects a node applies, over the shared state (and the online store's push)."""

    def __init__(self, state: GraphState, push: Callable[[str, str], Any] | None = None) -> None:
        self.state = state
        self.push = push

    def learn(self, event: FeedbackEvent) -> dict[str, Any]:
        """History, popularity and cache generation (exactly once each), then the push (at least once).
        Returns tags: ``duplicate`` (every effect was already done) and ``online_store_push``."""
        fid, it, state = event.feedback_id, event.interaction, self.state
        learns = it is not None and it.interaction_type not in NON_INTERACTIONS
        applied = []
        if learns and it.interaction_type not in NOT_HISTORY:
            applied.append(
                state.apply_once(f"{fid}:history", lambda con: state.add_history(con, it.user_id, it.item_id))
            )
        if learns:
            applied.append(
                state.apply_once(f"{fid}:popularity", lambda con: state.add_popularity(con, it.item_id, it.weight))
            )
        applied.append(state.apply_once(f"{fid}:cache", lambda con: state.bump_generation(con, event.user_id)))
        tags: dict[str, Any] = {}
        if learns and self.push is not None:
            try:
                pushed = state.run_once(f"{fid}:push", lambda: self.push(it.user_id, it.item_id))
                applied.append(pushed)
                tags["online_store_push"] = "ok"
            except Exception as exc:  # the store is down: the next retry pushes it; the log has the record
                log.warning("online store push failed for %s: %s", fid, exc)
                tags["online_store_push"] = "failed"
                applied.append(True)
        tags["duplicate"] = not any(applied)
        return tags

    def online_block(self, user_id: str, boost_items: int = 50) -> dict[str, Any]:
        """``{"history": [...newest first], "popularity_boost": {item: decayed count}}`` (empty parts left out)."""
        out: dict[str, Any] = {}
        recent = self.state.history(user_id)
        if recent:
            out["history"] = recent
        boost = self.state.top_popular(boost_items)
        if boost:
            out["popularity_boost"] = boost
        return out
