"""Seldon request-logger CloudEvents: what the event service accepts, what it refuses (naming the field),
and the impression a logged answer becomes. Pure parsing: no server, no Starlette."""

from __future__ import annotations

import json

import pytest

from smartreco.events.cloudevents import (
    FEEDBACK_SEEN,
    REQUEST,
    RESPONSE,
    InvalidEvent,
    impression_of,
    parse_event,
    seldon_headers,
)
from smartreco.feedback.records import IMPRESSION, make_record

pytestmark = [pytest.mark.unit]


def answer(request_id: str | None = "rid-1", n: int = 3, **data) -> dict:
    """A SeldonMessage as the hybrid node answers (what the logger on ab-router sees as the response)."""
    body = {
        "user_id": "u7",
        "recommendations": [{"item_id": str(i), "score": 1.0 / i, "rank": i} for i in range(1, n + 1)],
        "variant": "challenger",
        "model_version": "3",
        "context": {"channel": "mobile", "device_type": "ios", "session_id": "s1"},
        **data,
    }
    meta = {"tags": {"request_id": request_id}} if request_id else {}
    return {"jsonData": body, "meta": meta}


def event(message: dict | None, ce_type: str = RESPONSE, **headers) -> tuple[dict, bytes]:
    h = seldon_headers(ce_type, request_id="puid-9", model_id="ab-router")
    h.update(headers)
    h = {k: v for k, v in h.items() if v is not None}
    return h, (json.dumps(message).encode() if message is not None else b"")


def test_a_logged_answer_becomes_one_impression_keyed_by_the_graphs_request_id():
    ev = parse_event(*event(answer()))
    assert (ev.type, ev.request_id, ev.model_id) == (RESPONSE, "puid-9", "ab-router")
    assert ev.extensions["inferenceservicename"] == "smartreco"
    payload = impression_of(ev)
    rec = make_record(IMPRESSION, payload)
    assert rec["id"] == rec["request_id"] == "rid-1"  # meta.tags.request_id wins over ce-requestid
    assert rec["items"] == ["1", "2", "3"] and rec["scores"][0] == 1.0
    assert (rec["user_id"], rec["variant"], rec["model_version"], rec["channel"]) == ("u7", "challenger", "3", "mobile")
    assert rec["ts"].endswith("Z")


def test_the_request_id_falls_back_to_the_answer_then_to_the_puid():
    ev = parse_event(*event(answer(request_id=None)))
    assert impression_of(ev)["request_id"] == "puid-9"
    msg = answer(request_id=None)
    msg["jsonData"]["request_id"] = "from-body"
    assert impression_of(parse_event(*event(msg)))["request_id"] == "from-body"


def test_structured_mode_and_go_nanosecond_times_are_accepted():
    doc = {"specversion": "1.0", "id": "e1", "type": RESPONSE, "source": "x", "requestid": "p1",
           "time": "2026-12-06T10:00:00.123456789Z", "data": answer()}  # fmt: skip
    ev = parse_event({"Content-Type": "application/cloudevents+json"}, json.dumps(doc).encode())
    assert ev.id == "e1" and impression_of(ev)["ts"] == "2026-12-06T10:00:00.123456Z"


def test_an_empty_answer_is_no_impression_and_request_or_feedback_events_parse():
    assert impression_of(parse_event(*event(answer(n=0)))) is None
    assert parse_event(*event({"jsonData": {"user_id": "1"}}, REQUEST)).type == REQUEST
    assert parse_event(*event({"reward": 1}, FEEDBACK_SEEN)).type == FEEDBACK_SEEN


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ce-id": None}, "ce-id"),
        ({"ce-type": None}, "ce-type"),
        ({"ce-type": "io.seldon.serving.something"}, "ce-type"),
        ({"ce-time": "yesterday"}, "ce-time"),
        ({"Content-Type": "text/csv"}, "content-type"),
        ({"ce-requestid": "x" * 300}, "ce-requestid"),
    ],
)
def test_invalid_attributes_are_refused_naming_the_field(change, field):
    with pytest.raises(InvalidEvent) as err:
        impression_of(parse_event(*event(answer(), **change)))
    assert err.value.field == field and field in str(err.value)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"data": {"ndarray": [[1]]}}, "jsonData"),
        ({"jsonData": {"user_id": "1", "recommendations": "1,2"}}, "jsonData.recommendations"),
        ({"jsonData": {"user_id": "1", "recommendations": [{"score": 1}]}}, "jsonData.recommendations[0].item_id"),
        ({"jsonData": {"recommendations": [{"item_id": "1"}]}, "meta": {"tags": {"request_id": "r"}}},
         "jsonData.user_id"),
        ({"jsonData": {"user_id": "1", "recommendations": [{"item_id": "1", "score": "high"}]}},
         "jsonData.recommendations[0].score"),
    ],
)  # fmt: skip
def test_invalid_answers_are_refused_naming_the_field(message, field):
    with pytest.raises(InvalidEvent) as err:
        impression_of(parse_event(*event(message)))
    assert err.value.field == field


def test_bodies_that_are_not_a_seldon_message_are_refused():
    headers, _ = event(answer())
    for body in (b"{not json", b"[1, 2]"):
        with pytest.raises(InvalidEvent) as err:
            parse_event(headers, body)
        assert err.value.field == "body"
    with pytest.raises(InvalidEvent) as err:
        parse_event(*event(None))  # a response event without its payload
    assert err.value.field == "body"
