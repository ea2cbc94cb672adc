"""The executor's online-learning state: bounded recent history (LRU users, newest first), decayed and
bounded popularity counters, feedback truth parsing and idempotency ids (stdlib only, both venvs)."""

import pytest

from smartreco.schema import RequestValidationError
from smartreco.serving.online_learning import (
    Interaction,
    OnlineLearner,
    PopularityCounters,
    RecentHistory,
    feedback_id_of,
    interaction_of,
    merge_history,
    truth_of,
)

pytestmark = [pytest.mark.unit]


def test_recent_history_is_newest_first_deduplicated_and_lru_bounded():
    h = RecentHistory(max_users=2, per_user=3)
    for item in ("a", "b", "c", "a", "d"):
        h.add("u1", item)
    assert h.get("u1") == ["d", "a", "c"]
    h.add("u2", "x")
    h.get("u1")  # touch: u2 is now the least recently used
    h.add("u3", "y")
    assert len(h) == 2 and h.get("u2") == [] and h.get("u1") == ["d", "a", "c"]


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_popularity_counters_decay_with_their_half_life_and_stay_bounded():
    clock = _Clock()
    p = PopularityCounters(half_life_s=10.0, max_items=10, clock=clock)
    p.add("old", 4.0)
    clock.t = 10.0
    p.add("new", 1.0)
    assert p.top(2) == {"old": pytest.approx(2.0), "new": pytest.approx(1.0)}
    clock.t = 30.0
    assert p.top(1) == {"old": pytest.approx(0.5)}
    for i in range(50):
        p.add(f"i{i}", 1.0 + i)
    assert len(p) <= 10 and "i49" in p.top(3)
    clock.t = 10.0 * 60  # far in the future: rebased, not overflowed
    p.add("late", 1.0)
    assert p.top(1) == {"late": pytest.approx(1.0)}


def test_learner_views_add_popularity_but_not_history_and_ignore_changes_nothing():
    learner = OnlineLearner(boost_items=5)
    learner.observe(Interaction("u", "5", "view"))
    learner.observe(Interaction("u", "6", "ignore"))
    assert learner.online_block("u") == {"popularity_boost": {"5": pytest.approx(0.1, rel=1e-3)}}
    g = learner.history.generation("u")
    learner.observe(Interaction("u", "7", "click"))
    assert learner.online_block("u")["history"] == ["7"] and learner.history.generation("u") == g + 1


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
