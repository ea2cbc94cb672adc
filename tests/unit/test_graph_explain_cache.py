"""Explanation sentences and the response cache used by the graph."""

import pytest

from smartreco.explain.reasons import dominant_component, explain
from smartreco.serving.cache import LocalResponseCache, cache_key

pytestmark = [pytest.mark.unit]


def test_explanations_follow_the_largest_component():
    assert explain({"cb": 0.9, "cf": 0.1}, because_title="Heat (1995)") == "because you liked Heat (1995)"
    assert explain({"cf": 0.9, "cb": 0.1}) == "people with similar taste rated it highly"
    assert explain({"popularity": 0.5}, category="Drama") == "popular in Drama this week"
    assert explain({"cooccurrence": 0.7}, because_title="Alien") == "because you liked Alien"
    assert explain({}, category="Comedy") == "popular in Comedy this week"
    assert dominant_component({"cf": -1.0, "cb": 0.0}) is None


def test_cache_key_depends_on_request_and_version_not_request_id():
    req = {"user_id": "1", "num_recommendations": 10, "context": {"channel": "web"}, "request_id": "a"}
    k = cache_key("1", req, "v1")
    assert k == cache_key("1", {**req, "request_id": "b"}, "v1")
    assert k != cache_key("1", {**req, "num_recommendations": 5}, "v1")
    assert k != cache_key("1", {**req, "context": {"channel": "mobile"}}, "v1")
    assert k != cache_key("1", req, "v2")


def test_local_cache_invalidates_one_user_and_evicts():
    c = LocalResponseCache(ttl_s=60, max_entries=3)
    c.put("1", "1|a", {"x": 1})
    c.put("1", "1|b", {"x": 2})
    c.put("2", "2|a", {"x": 3})
    assert c.invalidate_user("1") == 2
    assert c.get("1", "1|a") is None and c.get("2", "2|a") == {"x": 3}
    for i in range(5):
        c.put("3", f"3|{i}", {"i": i})
    assert len(c) == 3 and c.get("2", "2|a") is None
    expired = LocalResponseCache(ttl_s=0)
    expired.put("1", "k", {})
    assert expired.get("1", "k") is None
