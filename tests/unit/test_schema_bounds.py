"""Request models at their bounds: meta.puid, a non-object meta, the num_recommendations cap, and the
open context (unknown keys accepted and listed) while everything else stays strict."""

from __future__ import annotations

import pytest

from smartreco.schema import (
    MAX_RECOMMENDATIONS,
    MAX_REQUEST_ID_CHARS,
    RecommendationRequest,
    RequestValidationError,
    check_message_meta,
    parse_meta,
    parse_or_raise,
    unknown_context_keys,
)

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"meta": [1, 2]}, "meta"),
        ({"meta": "abc"}, "meta"),
        ({"meta": {"puid": 42}}, "meta.puid"),
        ({"meta": {"puid": {"a": 1}}}, "meta.puid"),
        ({"meta": {"puid": "x" * (MAX_REQUEST_ID_CHARS + 1)}}, "meta.puid"),
        ({"meta": {"puid": "has space\n"}}, "meta.puid"),
        ({"meta": {"puid": "ok", "colour": "red"}}, "meta.colour"),
        ({"meta": {"routing": {"ab-router": "left"}}}, "meta.routing.ab-router"),
        ({"response": {"meta": 7}}, "response.meta"),
        ({"request": {"meta": {"puid": 1.5}}}, "request.meta.puid"),
    ],
)
def test_bad_meta_is_a_validation_error_naming_the_field(message, field):
    with pytest.raises(RequestValidationError) as err:
        check_message_meta(message)
    assert err.value.field == field and str(err.value).startswith(f"{field}:")


def test_good_meta_passes():
    check_message_meta({"meta": {"puid": "a" * MAX_REQUEST_ID_CHARS, "tags": {"x": [1]}, "routing": {"r": 1}}})
    check_message_meta({"meta": None, "jsonData": {}})
    check_message_meta({"response": {"meta": {"puid": "", "requestPath": {"n": "img:1"}}}})
    assert parse_meta({"puid": "req-1:2"}).puid == "req-1:2"


def test_num_recommendations_is_capped_at_the_documented_maximum():
    assert MAX_RECOMMENDATIONS == 100
    parse_or_raise(RecommendationRequest, {"user_id": "1", "num_recommendations": MAX_RECOMMENDATIONS})
    with pytest.raises(RequestValidationError, match="num_recommendations: .*100") as err:
        parse_or_raise(RecommendationRequest, {"user_id": "1", "num_recommendations": MAX_RECOMMENDATIONS + 1})
    assert err.value.field == "num_recommendations"


def test_context_is_open_but_bounded_and_the_rest_strict():
    req = parse_or_raise(
        RecommendationRequest,
        {"user_id": "1", "context": {"channel": "mobile", "locale": "de-DE", "app_version": "4.2"}},
    )
    dumped = req.model_dump(mode="json")
    assert dumped["context"]["locale"] == "de-DE"
    assert unknown_context_keys(dumped["context"]) == ["app_version", "locale"] == req.context.unknown_keys()
    with pytest.raises(RequestValidationError, match="context.channel"):  # known keys still checked
        parse_or_raise(RecommendationRequest, {"user_id": "1", "context": {"channel": "tv", "x": 1}})
    with pytest.raises(RequestValidationError, match="context: .*at most 32"):
        parse_or_raise(RecommendationRequest, {"user_id": "1", "context": {f"k{i}": i for i in range(33)}})
    with pytest.raises(RequestValidationError, match="colour"):  # outside context: strict
        parse_or_raise(RecommendationRequest, {"user_id": "1", "colour": "red"})
    with pytest.raises(RequestValidationError, match="request_id"):
        parse_or_raise(RecommendationRequest, {"user_id": "1", "request_id": "r" * 129})
