"""Pydantic API contracts: bad values are rejected with the field's name; gRPC floats pass as ints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smartreco.data.columns import CHANNELS, INTERACTION_TYPES
from smartreco.schema import (
    Feedback,
    Interaction,
    Item,
    RecommendationRequest,
    RequestValidationError,
    User,
    parse_or_raise,
)

pytestmark = [pytest.mark.unit]


def test_grpc_style_floats_are_accepted_as_ints() -> None:
    req = parse_or_raise(RecommendationRequest, {
        "user_id": 42.0, "num_recommendations": 10.0, "context": {"hour": 20.0, "channel": "mobile"},
        "exclude_items": [318.0, "12"],
    })
    assert req.user_id == "42"
    assert req.num_recommendations == 10 and isinstance(req.num_recommendations, int)
    assert req.context.hour == 20
    assert req.exclude_items == ["318", "12"]


def test_defaults() -> None:
    req = parse_or_raise(RecommendationRequest, {"user_id": "u1"})
    assert (req.num_recommendations, req.context.channel, req.include_explanation) == (10, "web", True)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_id": "u", "num_recommendations": 0}, "num_recommendations"),
        ({"user_id": "u", "num_recommendations": 10.5}, "num_recommendations"),
        ({"user_id": "u", "num_recommendations": 5000}, "num_recommendations"),
        ({"user_id": "u", "num_recommendations": True}, "num_recommendations"),
        ({"user_id": 42.5}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"num_recommendations": 3}, "user_id"),
        ({"user_id": "u", "context": {"hour": 25}}, "context.hour"),
        ({"user_id": "u", "context": {"channel": "fax"}}, "context.channel"),
        ({"user_id": "u", "exclude_items": "318"}, "exclude_items"),
        ({"user_id": "u", "colour": "red"}, "colour"),
    ],
)
def test_bad_request_names_the_field(payload: dict, field: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_or_raise(RecommendationRequest, payload)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert "\n" not in str(info.value)


def test_non_object_body() -> None:
    with pytest.raises(RequestValidationError, match="must be a JSON object, got list"):
        parse_or_raise(RecommendationRequest, [1, 2])


@pytest.mark.parametrize(
    ("model", "payload", "field"),
    [
        (Interaction, {"user_id": 1, "item_id": 2, "interaction_type": "buy",
                       "timestamp": "2024-01-01T00:00:00Z"}, "interaction_type"),
        (Interaction, {"user_id": 1, "item_id": 2, "interaction_type": "rating", "rating": 6,
                       "timestamp": "2024-01-01T00:00:00Z"}, "rating"),
        (Interaction, {"user_id": 1, "item_id": 2, "interaction_type": "view",
                       "timestamp": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "timestamp"),
        (Interaction, {"user_id": 1, "item_id": 2, "interaction_type": "view", "timestamp": "yesterday"},
         "timestamp"),
        (Item, {"item_id": "1", "title": "t", "category": "c", "price": -1}, "price"),
        (Item, {"item_id": "1", "title": "t"}, "category"),
        (User, {"user_id": None}, "user_id"),
        (Feedback, {"user_id": "u", "reward": -1}, "reward"),
        (Feedback, {"user_id": "u", "reward": 1, "truth": {"item_id": 3, "interaction_type": "nap"}},
         "truth.interaction_type"),
    ],
)
def test_records_reject_bad_values_by_field(model, payload: dict, field: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_or_raise(model, payload)
    assert info.value.field == field
    assert field in str(info.value)


def test_valid_records_and_literals_match_columns() -> None:
    inter = parse_or_raise(Interaction, {"user_id": 7.0, "item_id": "9", "interaction_type": "purchase",
                                         "timestamp": "2024-01-01T10:00:00", "channel": "email"})
    assert (inter.user_id, inter.timestamp.tzinfo) == ("7", UTC)
    truth = {"item_id": 3.0, "interaction_type": "click"}
    fb = parse_or_raise(Feedback, {"user_id": "u", "reward": 1.0, "truth": truth})
    assert fb.truth.item_id == "3"
    assert set(Interaction.model_fields["interaction_type"].annotation.__args__) == set(INTERACTION_TYPES)
    assert set(Interaction.model_fields["channel"].annotation.__args__) == set(CHANNELS)
