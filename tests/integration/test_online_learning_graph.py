"""Online learning without a retrain, through the whole in-process graph (fake bundle, response cache
on, no online store): a click changes the user's very next recommendations. The fake bundle's item
vectors are replaced by category-clustered ones so CF fold-in and the CB profile are category-aware
(as learned embeddings are): a click on an item from a new category pulls that category in."""

import numpy as np
import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

from graph_fake_bundle import CATEGORIES, GraphThread  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("online")
    g = GraphThread(tmp, in_process=True, mode="fixed", cache="local", feedback_log=str(tmp / "feedback"))
    rng = np.random.default_rng(1)
    for obj in g.graph.engine.transport.objects.values():
        bundle = getattr(obj, "bundle", None)
        bundle = getattr(bundle, "base", bundle)  # a node serving live items wraps its bundle in a LiveView
        if bundle is not None:  # one-hot of the category + a little noise
            bundle.item_vec = {
                i: np.eye(8)[CATEGORIES.index(bundle.category[i])] + rng.normal(0, 0.05, 8) for i in bundle.items
            }
    g.pushed = []
    effects = g.graph.engine.transport.objects["feature-transformer"].effects  # the node that pushes
    effects.push = lambda user, item: g.pushed.append((user, item))
    yield g
    g.stop()


def _recs(graph, user):
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": user, "num_recommendations": 10}})
    assert code == 200, body
    return body


def _click(graph, user, item, resp):
    code, out = graph.post(
        "/api/v1.0/feedback",
        {
            "request": {"jsonData": {"user_id": user}},
            "response": resp,
            "reward": 1.0,
            "truth": {"item_id": item, "interaction_type": "click"},
        },
    )
    assert code == 200, out
    return out


def _count(body, category):
    return sum(r["category"] == category for r in body["jsonData"]["recommendations"])


def _first_of(category, n_items=240):
    return next(str(k + 1) for k in range(n_items) if CATEGORIES[k % len(CATEGORIES)] == category)


def test_click_on_a_new_category_changes_the_very_next_recommendations(graph):
    user = "online-newcomer"
    cold = _recs(graph, user)
    assert cold["jsonData"]["cold_start"] is True
    assert _recs(graph, user)["meta"]["tags"].get("cache") == "hit"  # the cache is on

    horror = _first_of("Horror")
    _click(graph, user, horror, cold)
    after_horror = _recs(graph, user)  # no retrain, no online store, cache invalidated
    assert after_horror["meta"]["tags"].get("cache") != "hit"
    assert after_horror["meta"]["tags"]["cf_cold_start"] == "fold_in"
    assert after_horror["jsonData"]["cold_start"] is False
    assert _count(after_horror, "Horror") >= 4 > _count(cold, "Horror")
    assert horror not in {r["item_id"] for r in after_horror["jsonData"]["recommendations"]}

    comedy = _first_of("Comedy")  # a category the user has not touched yet
    _click(graph, user, comedy, after_horror)
    after_comedy = _recs(graph, user)
    ids = [r["item_id"] for r in after_comedy["jsonData"]["recommendations"]]
    assert ids != [r["item_id"] for r in after_horror["jsonData"]["recommendations"]]
    assert _count(after_comedy, "Comedy") >= 4 > _count(after_horror, "Comedy")
    assert {horror, comedy}.isdisjoint(ids)  # what the user just interacted with is not re-recommended
    assert any(
        r["explanation"].startswith("because you liked Movie ") for r in after_comedy["jsonData"]["recommendations"]
    )
    assert graph.pushed[-2:] == [(user, horror), (user, comedy)]  # also pushed to the online store


def test_popularity_counters_and_overlay_reach_the_transformer(graph):
    transformer = graph.graph.engine.transport.objects["feature-transformer"]
    state = transformer.effects.state  # the shared node state (one SQLite file for every node process)
    resp = _recs(graph, "7")
    for _ in range(3):
        graph.post(
            "/api/v1.0/feedback",
            {
                "request": {"jsonData": {"user_id": "7"}},
                "response": resp,
                "reward": 5.0,
                "truth": {"item_id": "200", "interaction_type": "purchase"},
            },
        )  # the same derived id: counted once
    graph.post(
        "/api/v1.0/feedback",
        {
            "request": {"jsonData": {"user_id": "other"}},
            "reward": 1.0,
            "truth": {"item_id": "200", "interaction_type": "click"},
        },
    )
    top = state.top_popular(5)
    assert next(iter(top)) == "200"
    assert top["200"] == pytest.approx(4.0 + 0.5, rel=1e-3)  # purchase + click weights, decayed ~0
    assert state.history("7")[0] == "200"
    out = transformer.transform_input({"user_id": "7"})
    assert out["history"][:1] == ["200"] and out["history"][1:4] == ["10", "11", "12"]  # overlay + store
    assert out["online"]["popularity_boost"]["200"] == pytest.approx(top["200"], rel=1e-3)
    assert out["request"]["request_id"]  # the root gives every answer the graph's request id
