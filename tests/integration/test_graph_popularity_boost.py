"""Live popularity reaches the ranking: the executor's decayed click counts (``online.popularity_boost``)
lift an item for a cold-start user, through the real model runtime and through the whole graph."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

from graph_fake_bundle import GraphThread  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]


def _cold_messages(items: int, boost: dict | None, n: int = 5) -> list[dict]:
    base = {"request": {"user_id": "new-user", "num_recommendations": n, "context": {}}, "history": [],
            "known_user": False, "context": {}}
    if boost is not None:
        base["online"] = {"popularity_boost": boost}
    pop = {f"i{i}": 0.0 for i in range(items)}  # the children's popularity fallback (no evidence)
    return [{**base, "source": s, "candidates": pop, "cold_start": "popularity"} for s in ("cf", "cb")]


def test_boost_lifts_a_mid_popular_item_for_a_cold_user_in_the_real_runtime(tmp_path, monkeypatch):
    monkeypatch.delenv("SMARTRECO_BUNDLE_LOADER", raising=False)  # the real bundle loader, not the fake
    # its own state file (live items, history): the default is the checkout's runs/, which other runs fill
    monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "graph-state" / "state.sqlite"))
    monkeypatch.delenv("SMARTRECO_STATE", raising=False)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_bundle_serving import _tiny_bundle

    from inference_graph.hybrid_combiner import HybridCombiner

    comb = HybridCombiner(model_uri=str(_tiny_bundle(tmp_path / "b")))
    comb.load()
    before = [r["item_id"] for r in comb.aggregate(_cold_messages(40, None))["recommendations"]]
    assert "i30" not in before  # 10th most popular: outside a cold top 5
    after = comb.aggregate(_cold_messages(40, {"i30": 6.0, "i2": 0.5}))
    recs = {r["item_id"]: r for r in after["recommendations"]}
    assert "i30" in recs
    assert recs["i30"]["component_scores"]["cb"] == 0.0  # reported as popularity, not content
    assert recs["i30"]["component_scores"]["popularity"] > 0.6 * 30 / 39
    assert "popular" in recs["i30"]["explanation"]
    assert "i2" not in recs  # the lift is bounded: a weak boost on a tail item does not reach the top
    assert comb.tags().get("online_boost") == 2


def test_malformed_boost_is_ignored_not_a_crash(tmp_path, monkeypatch):
    from inference_graph.hybrid_combiner import popularity_boost

    assert popularity_boost({"online": {"popularity_boost": {"a": "x", "b": -1, "c": float("nan"), "d": 2.0,
                                                             "e": 1.0, "f": True}}}) == {"d": 1.0, "e": 0.5}
    assert popularity_boost({"online": {"popularity_boost": ["a"]}}) == {}
    assert popularity_boost({}) == {}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("boost"), in_process=True, cache="local")
    yield g
    g.stop()


def test_a_burst_of_clicks_lifts_an_item_for_a_cold_start_user(graph):
    code, before = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "cold-a", "num_recommendations": 10}})
    assert code == 200
    assert "230" not in {r["item_id"] for r in before["jsonData"]["recommendations"]}
    for user in ("1", "2", "3", "4", "5"):
        code, out = graph.post(
            "/api/v1.0/feedback",
            {"request": {"jsonData": {"user_id": user}}, "reward": 1.0,
             "truth": {"item_id": "230", "interaction_type": "click"}},
        )
        assert code == 200, out
    code, after = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "cold-b", "num_recommendations": 10}})
    recs = {r["item_id"]: r for r in after["jsonData"]["recommendations"]}
    assert "230" in recs, list(recs)
    assert after["jsonData"]["cold_start"] is True
    assert recs["230"]["component_scores"]["cb"] == 0.0 and "popular" in recs["230"]["explanation"]
