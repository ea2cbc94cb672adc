"""The fused arm asks the answer cache once per request (issue #23's CPU cut): ``HybridRecommender.predict``
computes the key and looks it up before its candidate search, and hands the key to the combiner, which then
neither recomputes it (a state read and a digest) nor looks it up again. The answer is the one the combiner
gives when it does both itself (Seldon's plain ``aggregate`` call), and the next identical request is a hit."""

from __future__ import annotations

import pytest
from hybrid_tiny import fitted

import inference_graph.hybrid_recommender as hr

pytestmark = [pytest.mark.unit]

#: user id -> recent item ids, what the arm's feature reader answers (``SMARTRECO_FEATURE_READER``)
HISTORIES: dict[str, list[str]] = {}


def read(user_id: str) -> dict:
    return {"recent_items": HISTORIES.get(user_id, [])}


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    train, model = fitted()
    rt = model.runtime()
    items = [str(i) for i in model.item_ids]
    HISTORIES.clear()
    HISTORIES.update({"u1": items[:6], "u2": items[10:13]})
    monkeypatch.setenv("SMARTRECO_FEATURE_READER", f"{__name__}:read")
    monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "state.sqlite"))
    monkeypatch.delenv("SMARTRECO_STATE", raising=False)
    monkeypatch.setenv("SMARTRECO_LIVE_ITEMS_REFRESH_S", "-1")  # the runtime itself, no live view around it
    monkeypatch.setattr(hr, "load_bundle", lambda uri: rt)
    return rt


def _arm(cache: str) -> hr.HybridRecommender:
    node = hr.HybridRecommender(model_uri="tiny", cache=cache)
    node.load()
    return node


def _recs(answer: dict) -> list[dict]:
    return answer["recommendations"]


def test_the_fused_arm_looks_the_cache_up_once_and_answers_as_the_combiner_alone(runtime, monkeypatch):
    node = _arm("local")
    cache = node.combiner.cache
    keys, gets = [], []
    key, get = cache.key, cache.cache.get
    monkeypatch.setattr(cache, "key", lambda *a: keys.append(a) or key(*a))
    monkeypatch.setattr(cache.cache, "get", lambda *a: gets.append(a) or get(*a))
    reference = _arm("off")  # the same parts, the combiner doing its own (here: no) look-up
    for user in ("u1", "u2", "cold-user"):
        request = {"user_id": user, "num_recommendations": 5, "context": {"channel": "web", "hour": 9}}
        keys.clear(), gets.clear()
        first = node.predict(request)
        assert (len(keys), len(gets)) == (1, 1), user  # one key, one look-up (a miss), one answer stored
        assert node.tags().get("cache") is None
        transformed = reference.transformer.transform_input(request)
        alone = reference.combiner.aggregate([reference.cf.predict(transformed), reference.cb.predict(transformed)])
        assert _recs(first) == _recs(alone) and len(_recs(first)) == 5
        keys.clear(), gets.clear()
        again = node.predict(request)
        assert (len(keys), len(gets)) == (1, 1)
        assert node.tags().get("cache") == "hit" and _recs(again) == _recs(first)


def test_aggregate_called_plainly_still_looks_the_cache_up_itself(runtime):
    """Seldon's call (no ``looked_up``): the combiner computes the key and answers a repeat from the cache."""
    node = _arm("local")
    request = {"user_id": "u1", "num_recommendations": 4}
    transformed = node.transformer.transform_input(request)
    children = [node.cf.predict(transformed), node.cb.predict(transformed)]
    first = node.combiner.aggregate(children)
    assert node.combiner.tags().get("cache") is None
    again = node.combiner.aggregate(children)
    assert node.combiner.tags().get("cache") == "hit" and _recs(again) == _recs(first)
