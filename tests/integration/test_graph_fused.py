"""The fused graph (router -> one HybridRecommender per arm, ``--fused``): the same answers, routing,
feedback, online learning and degradation as the five-node graph, with two hops instead of five;
in-process and as real ``seldon-core-microservice`` processes."""

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

from graph_fake_bundle import GraphThread  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]


@pytest.fixture(scope="module", params=[True, False], ids=["in-process", "processes"])
def graph(request, tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("fused"), in_process=request.param, mode="epsilon_greedy", fused=True)
    yield g
    g.stop()


def _recs(body):
    return body["jsonData"]["recommendations"]


def test_graph_is_router_over_two_fused_arms(graph):
    root = graph.graph.graph.root
    assert (root.name, root.type) == ("ab-router", "ROUTER")
    assert [(c.name, c.type, c.class_name.rsplit(".", 1)[-1]) for c in root.children] == [
        ("hybrid-a", "MODEL", "HybridRecommender"),
        ("hybrid-b", "MODEL", "HybridRecommender"),
    ]


def test_known_user_gets_ten_explained_recommendations_in_two_hops(graph):
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "7", "num_recommendations": 10}})
    assert code == 200
    recs = _recs(body)
    assert len(recs) == 10 and [r["rank"] for r in recs] == list(range(1, 11))
    assert all(r["explanation"] and 0 <= r["confidence"] <= 1 for r in recs)
    assert not {r["item_id"] for r in recs} & {"10", "11", "12"}  # history is never re-recommended
    arm = "ab"[body["meta"]["routing"]["ab-router"]]
    assert set(body["meta"]["requestPath"]) == {"ab-router", f"hybrid-{arm}"}
    assert body["jsonData"]["variant"] == {"a": "champion", "b": "challenger"}[arm]
    assert body["meta"]["tags"]["feature_source"] == "online" and body["meta"]["tags"]["known_user"] is True


def test_cold_user_with_exclusions_gets_popular_items(graph):
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "never-seen", "exclude_items": [1, "2"]}})
    assert code == 200
    recs = _recs(body)
    assert len(recs) == 10 and body["jsonData"]["cold_start"] is True
    assert {"1", "2"}.isdisjoint(r["item_id"] for r in recs)


def test_invalid_request_is_400_naming_the_field(graph):
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "1", "num_recommendations": 0}})
    assert code == 400 and "num_recommendations" in body["status"]["info"]


def test_feedback_reaches_the_router_and_the_next_answer(graph):
    code, first = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "41"}})
    clicked = _recs(first)[0]["item_id"]
    code, out = graph.post(
        "/api/v1.0/feedback",
        {"response": first, "reward": 1.0, "truth": {"item_id": clicked, "interaction_type": "click"},
         "request": {"jsonData": {"user_id": "41"}}},
    )
    assert code == 200 and out["meta"]["tags"]["routing_known"] is True
    code, after = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "41"}})
    # the click went into the online history the arm reads (via the router): it is not recommended again
    assert clicked not in {r["item_id"] for r in _recs(after)}
    assert after["meta"]["tags"].get("online_history", 0) >= 1


@pytest.fixture(scope="module")
def inproc(tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("fused-inproc"), in_process=True, fused=True)
    yield g
    g.stop()


def test_a_failing_candidate_source_degrades_but_answers(inproc):
    graph = inproc
    arms = [graph.graph.engine.transport.objects[n] for n in ("hybrid-a", "hybrid-b")]

    def boom(*a, **k):
        raise RuntimeError("index unavailable")

    saved = [arm.cb.predict for arm in arms]
    for arm in arms:
        arm.cb.predict = boom
    try:
        code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "8"}})
        assert code == 200 and len(_recs(body)) == 10
        assert body["meta"]["tags"]["degraded"].endswith("/cb")
        assert body["jsonData"]["degraded"] == ["cb"]
    finally:
        for arm, fn in zip(arms, saved, strict=True):
            arm.cb.predict = fn


def test_fused_node_reports_its_own_call_metrics_and_the_parts_domain_metrics(tmp_path, monkeypatch):
    import graph_fake_bundle as fake

    from inference_graph.hybrid_recommender import HybridRecommender

    monkeypatch.setenv("SMARTRECO_METRICS_FLUSH_S", "0")
    # its own state file: the default is the checkout's runs/, whose live items the fake bundle does not hold
    monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "graph-state" / "state.sqlite"))
    monkeypatch.delenv("SMARTRECO_STATE", raising=False)
    for k, v in fake.node_env().items():
        if k != "PYTHONPATH":
            monkeypatch.setenv(k, v)
    node = HybridRecommender(model_uri=str(fake.write(tmp_path / "bundle")))
    node.load()
    out = node.predict({"user_id": "7", "num_recommendations": 5})
    assert len(out["recommendations"]) == 5
    metrics = node.metrics()
    timers = [m for m in metrics if m["key"] == "smartreco_node_ms"]
    assert [m["tags"]["node"] for m in timers] == [node.name]  # one call timer: the node's, not each part's
    keys = {m["key"] for m in metrics}
    assert {"smartreco_known_users_total", "smartreco_recommendations_total"} <= keys  # parts' domain metrics
    assert node.tags()["variant"] == "champion"
