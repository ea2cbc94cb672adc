"""The session rule: the categories of a user's live clicks that a list lacks get a place in it
(``smartreco.serving.session_intent``), in the pure picker, in ``BundleRuntime.rank`` and in the explanation."""

from __future__ import annotations

import numpy as np
import pytest
from hybrid_tiny import fitted

from smartreco.data import columns as C
from smartreco.explain.reasons import explain
from smartreco.serving.session_intent import admit_session_categories, session_slots

pytestmark = [pytest.mark.unit]

#: categories of a score-ordered pool (position 0 = best)
POOL = np.asarray(["A", "A", "B", "A", "C", "B", "C", "D"], dtype=object)


def _admit(picked, recent, n=4, slots=2):
    got, admitted = admit_session_categories(np.asarray(picked), POOL, recent, n, slots)
    return got.tolist(), admitted


def test_slots_are_a_share_of_the_list_at_least_one():
    assert [session_slots(10, 0.2), session_slots(3, 0.2), session_slots(10, 0), session_slots(0, 0.2)] == [2, 1, 0, 0]
    assert session_slots(4, 5.0) == 4


def test_a_missing_category_takes_the_lowest_scored_place_with_its_best_candidate():
    # the list A A B A lacks C: C's best candidate (position 4) replaces the lowest-scored pick (3, an A)
    assert _admit([0, 1, 2, 3], ["C"]) == ([0, 1, 2, 4], {4: "C"})


def test_held_or_absent_categories_change_nothing():
    assert _admit([0, 1, 2, 3], ["B", "A"]) == ([0, 1, 2, 3], {})
    assert _admit([0, 1, 2, 3], ["E"]) == ([0, 1, 2, 3], {})  # no candidate of E in the pool
    assert _admit([0, 1, 2, 3], []) == ([0, 1, 2, 3], {})
    assert _admit([0, 1, 2, 3], ["C"], slots=0) == ([0, 1, 2, 3], {})


def test_newest_categories_first_up_to_the_slots_and_never_a_live_category_dropped():
    # newest click D, then C: both missing, two slots; the two lowest-scored picks outside {D, C} make room
    assert _admit([0, 1, 2, 3], ["D", "C", "D"]) == ([0, 1, 4, 7], {7: "D", 4: "C"})
    assert _admit([0, 1, 2, 3], ["D", "C"], slots=1) == ([0, 1, 2, 7], {7: "D"})
    # the clicked category B is held: its pick (2) stays, the A below it goes
    assert _admit([0, 1, 2, 3], ["B", "C"]) == ([0, 1, 2, 4], {4: "C"})
    # every pick is of a live category: nothing can make room
    assert _admit([0, 1], ["A", "C"], n=2) == ([0, 1], {})


def test_a_short_list_grows_instead():
    assert _admit([0, 1], ["C"], n=4) == ([0, 1, 4], {4: "C"})


def _user_case():
    """A user with history, the ranker's list for them, and three items of a category the list lacks."""
    train, model = fitted()
    rt = model.runtime()
    inter = train.interactions
    sizes = inter[C.USER_ID].value_counts()
    user = str(sizes[sizes >= 5].index[-1])  # a short history: categories left that the list lacks
    history = [str(i) for i in inter.loc[inter[C.USER_ID] == user, C.ITEM_ID]]
    base = rt.rank(user, history, None, None, {"hour": 20}, 10, set(history))
    shown = {r.category for r in base}
    items = train.items.set_index(C.ITEM_ID)[C.CATEGORY]
    fresh = items[~items.index.astype(str).isin(history)]
    # a category the list lacks with items left to click and to recommend
    missing = next(c for c in fresh.value_counts().index if c not in shown and (fresh == c).sum() >= 8)
    clicks = [str(i) for i in fresh.index[fresh == missing]][:3]
    return rt, user, history, base, missing, clicks


def test_runtime_places_the_clicked_category_and_explains_it_by_the_click():
    rt, user, history, base, missing, clicks = _user_case()
    assert len(clicks) == 3
    merged = [*clicks[::-1], *history]  # the graph's history: the live clicks lead, newest first
    kwargs = dict(exclude=set(merged), max_category_share=0.5)
    plain = rt.rank(user, merged, None, None, {"hour": 20}, 10, **kwargs)
    # the case exercises the rule: on the tiny model the clicks alone do not bring the category in
    assert missing not in {r.category for r in plain} and not any(r.session for r in plain)
    ruled = rt.rank(user, merged, None, None, {"hour": 20}, 10, session=clicks[::-1], **kwargs)
    (item,) = [r for r in ruled if r.session]
    assert item.category == missing and item.item_id not in merged
    assert item.because_item in clicks and item.because_title == rt.title(item.because_item)
    # everything else is the ranker's list, in its order, less its lowest-scored item
    assert [r.item_id for r in ruled if not r.session] == [r.item_id for r in plain][: len(ruled) - 1]
    assert [r.rank for r in ruled] == list(range(1, len(ruled) + 1))
    assert [r.score for r in ruled] == sorted((r.score for r in ruled), reverse=True)
    # the rule off: the ranker's list exactly
    off = rt.rank(user, merged, None, None, {"hour": 20}, 10, session=clicks, session_share=0.0, **kwargs)
    assert [r.to_dict() for r in off] == [r.to_dict() for r in plain]


def test_explanation_names_the_click():
    comps = {"cf": 0.1, "popularity": 0.5}
    assert explain(comps, because_title="Alien", category="Horror", session=True) == (
        "more in Horror: you just viewed Alien"
    )
    assert explain(comps, because_title="Alien", category="Horror") == "popular in Horror this week"
