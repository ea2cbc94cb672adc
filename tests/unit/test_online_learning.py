"""Feedback truth parsing, idempotency ids and the history merge every graph node uses (stdlib only, both
venvs); the shared state they feed is tested in test_graph_state.py."""

import pytest

from smartreco.schema import RequestValidationError
from smartreco.serving.online_learning import (
    Interaction,
    feedback_id_of,
    interaction_of,
    merge_history,
    truth_of,
)

pytestmark = [pytest.mark.unit]


def test_truth_parsing_names_the_bad_field():
    assert truth_of({"truth": {"jsonData": {"item_id": 3}}}) == {"item_id": 3}
    assert interaction_of("u", {"item_id": 3.0, "interaction_type": "click"}) == Interaction("u", "3", "click")
    assert interaction_of("u", {}) is None
    for truth, field in (
        ({"item_id": "3"}, "truth.interaction_type"),
        ({"item_id": "3", "interaction_type": "poke"}, "truth.interaction_type"),
        ({"item_id": True, "interaction_type": "click"}, "truth.item_id"),
    ):
        with pytest.raises(RequestValidationError) as err:
            interaction_of("u", truth)
        assert str(err.value).startswith(field)
    with pytest.raises(RequestValidationError):
        truth_of({"truth": [1]})


def test_feedback_ids_given_derived_from_the_answer_or_fresh():
    click = Interaction("u", "3", "click")
    assert feedback_id_of({"feedback_id": 12}, {}, "p", click) == "12"
    assert feedback_id_of({}, {"feedback_id": "t"}, "p", click) == "t"
    derived = feedback_id_of({}, {}, "puid-1", click)
    assert derived == feedback_id_of({}, {}, "puid-1", click)
    assert derived != feedback_id_of({}, {}, "puid-2", click)
    assert derived != feedback_id_of({}, {}, "puid-1", Interaction("u", "3", "like"))
    assert feedback_id_of({}, {}, None, click) != feedback_id_of({}, {}, None, click)


def test_merge_history_puts_the_overlay_first_without_repeats():
    assert merge_history(["9", "2"], ["2", "1", "0"], 3) == ["9", "2", "1"]
    assert merge_history([], ["1"], 5) == ["1"]
