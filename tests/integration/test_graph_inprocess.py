"""The whole graph in-process (same node classes, no node processes) behind the real REST and gRPC
fronts: recommendations with explanations, cold start, exclusions, routing, feedback, validation,
degradation, cache invalidation."""

import json

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import grpc  # noqa: E402
from graph_fake_bundle import GraphThread

pytestmark = [pytest.mark.serving, pytest.mark.integration]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("inproc"), in_process=True, mode="epsilon_greedy", cache="local")
    yield g
    g.stop()


def _recs(body):
    return body["jsonData"]["recommendations"]


def test_known_user_gets_ten_explained_recommendations_and_routing(graph):
    code, body = graph.post(
        "/api/v1.0/predictions", {"jsonData": {"user_id": "7", "num_recommendations": 10}}
    )
    assert code == 200
    recs = _recs(body)
    assert len(recs) == 10 and [r["rank"] for r in recs] == list(range(1, 11))
    assert all(r["explanation"] and 0 <= r["confidence"] <= 1 for r in recs)
    assert not {r["item_id"] for r in recs} & {"10", "11", "12"}  # history is never re-recommended
    meta = body["meta"]
    assert meta["routing"]["ab-router"] in (0, 1)
    arm = "a" if meta["routing"]["ab-router"] == 0 else "b"
    assert set(meta["requestPath"]) == {
        "feature-transformer",
        "ab-router",
        f"hybrid-{arm}",
        f"cf-{arm}",
        f"cb-{arm}",
    }
    assert body["jsonData"]["variant"] == {"a": "champion", "b": "challenger"}[arm]
    cats = [r["category"] for r in recs]
    assert max(cats.count(c) for c in cats) <= 5  # max_category_share 0.5


def test_history_drives_because_you_liked(graph):
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "cold-with-history"}})
    assert code == 200
    texts = [r["explanation"] for r in _recs(body)]
    assert len(texts) == 10
    assert any(t.startswith("because you liked Movie ") for t in texts)
    assert body["meta"]["tags"]["cf_cold_start"] == "fold_in"


def test_cold_user_gets_popular_items_with_category_reason(graph):
    code, body = graph.post(
        "/api/v1.0/predictions", {"jsonData": {"user_id": "never-seen", "exclude_items": [1, "2"]}}
    )
    assert code == 200
    recs = _recs(body)
    assert len(recs) == 10 and body["jsonData"]["cold_start"] is True
    assert {"1", "2"}.isdisjoint(r["item_id"] for r in recs)
    assert all(r["explanation"].startswith("popular in ") for r in recs)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jsonData": {"num_recommendations": 10}}, "jsonData.user_id"),
        ({"jsonData": {"user_id": "1", "num_recommendations": 0}}, "jsonData.num_recommendations"),
        ({"jsonData": {"user_id": "1", "num_recommendations": 1001}}, "jsonData.num_recommendations"),
        ({"jsonData": {"user_id": "1", "num_recommendations": "ten"}}, "jsonData.num_recommendations"),
        ({"jsonData": {"user_id": {"a": 1}}}, "jsonData.user_id"),
        ({"jsonData": {"user_id": "1", "exclude_items": "5"}}, "jsonData.exclude_items"),
        ({"jsonData": {"user_id": "1", "context": {"channel": "tv"}}}, "jsonData.context.channel"),
        ({"data": {"ndarray": [[1]]}}, "jsonData"),
        ([1, 2], "request body"),
    ],
)
def test_invalid_requests_are_400_naming_the_field(graph, body, field):
    code, out = graph.post("/api/v1.0/predictions", body)
    assert code == 400
    assert out["status"]["info"].startswith(field), out


def test_malformed_and_oversized_bodies_are_400(graph):
    code, out = graph.post("/api/v1.0/predictions", b'{"jsonData": {"user_id": ', raw=True)
    assert code == 400 and "malformed JSON" in out["status"]["info"]
    big = json.dumps({"jsonData": {"user_id": "1", "exclude_items": ["x" * 100] * 20000}}).encode()
    code, out = graph.post("/api/v1.0/predictions", big, raw=True)
    assert code == 400 and "larger than" in out["status"]["info"]


def _stub(graph):
    from seldon_core.proto import prediction_pb2_grpc

    channel = grpc.insecure_channel(graph.grpc_target)
    return channel, prediction_pb2_grpc.SeldonStub(channel)


def test_grpc_predict_feedback_and_invalid_argument(graph):
    from google.protobuf import json_format
    from seldon_core.proto import prediction_pb2

    channel, stub = _stub(graph)
    try:
        msg = json_format.ParseDict(
            {"jsonData": {"user_id": 7, "num_recommendations": 10, "exclude_items": ["235"]}},
            prediction_pb2.SeldonMessage(),
        )
        resp = json_format.MessageToDict(stub.Predict(msg, timeout=30))
        recs = resp["jsonData"]["recommendations"]
        assert len(recs) == 10 and all(r["explanation"] for r in recs)
        assert "235" not in {r["item_id"] for r in recs}
        assert "ab-router" in resp["meta"]["routing"]
        fb = json_format.ParseDict(
            {"request": {"jsonData": {"user_id": "7"}}, "response": resp, "reward": 1.0},
            prediction_pb2.Feedback(),
        )
        out = json_format.MessageToDict(stub.SendFeedback(fb, timeout=30))
        assert out["meta"]["tags"]["routing_known"] is True
        bad = json_format.ParseDict(
            {"jsonData": {"user_id": "7", "num_recommendations": 0}}, prediction_pb2.SeldonMessage()
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(bad, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "num_recommendations" in err.value.details()
    finally:
        channel.close()


def test_feedback_updates_bandit_arm_and_invalidates_cache(graph):
    router = graph.graph.engine.transport.objects["ab-router"]
    code, first = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "31"}})
    # epsilon-greedy routes each request afresh and each arm's combiner keeps its own cache: ask again until
    # a request lands on the first one's arm (failed in CI when the second request explored the other arm)
    for _ in range(50):
        code, again = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "31"}})
        if again["meta"]["routing"]["ab-router"] == first["meta"]["routing"]["ab-router"]:
            break
    assert again["meta"]["routing"]["ab-router"] == first["meta"]["routing"]["ab-router"]
    assert again["meta"]["tags"].get("cache") == "hit"
    arm = router.arms[first["meta"]["routing"]["ab-router"]]
    before = router.arm_stats()[arm]["pulls"]
    code, out = graph.post(
        "/api/v1.0/feedback",
        {
            "request": {"jsonData": {"user_id": "31"}},
            "response": first,
            "reward": 1.0,
            "truth": {"item_id": "5", "interaction_type": "click"},
        },
    )
    assert code == 200
    assert router.arm_stats()[arm]["pulls"] == before + 1
    code, after = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "31"}})
    assert after["meta"]["tags"].get("cache") != "hit"


def test_feedback_without_response_uses_recorded_route(graph):
    router = graph.graph.engine.transport.objects["ab-router"]
    code, first = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "32"}})
    arm = router.arms[first["meta"]["routing"]["ab-router"]]
    before = router.arm_stats()[arm]["reward_sum"]
    code, out = graph.post("/api/v1.0/feedback", {"request": {"jsonData": {"user_id": "32"}}, "reward": 4.0})
    assert code == 200 and out["meta"]["tags"]["routing_known"] is True  # the user's last answer, as recorded
    assert router.arm_stats()[arm]["reward_sum"] == before + 4.0
    code, out = graph.post("/api/v1.0/feedback", {"reward": -1})
    assert code == 400 and out["status"]["info"].startswith("reward")


def test_failed_cb_node_degrades_but_answers(graph):
    transport = graph.graph.engine.transport
    transport.failing.update({"cb-a", "cb-b"})
    try:
        code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "8"}})
        assert code == 200 and len(_recs(body)) == 10
        assert "cb-" in body["meta"]["tags"]["degraded"]
        assert body["jsonData"]["degraded"] == ["cb"]
        transport.failing.update({"cf-a", "cf-b", "feature-transformer"})
        code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "9"}})
        assert code == 200 and len(_recs(body)) == 10  # popularity from the combiner
        assert "feature-transformer" in body["meta"]["tags"]["degraded"]
    finally:
        transport.failing.clear()


def test_feature_store_down_is_tagged_not_failed(graph):
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "store-down"}})
    assert code == 200 and len(_recs(body)) == 10
    assert body["meta"]["tags"]["feature_source"] == "unavailable"


def test_health_and_metrics(graph):
    import urllib.request

    with urllib.request.urlopen(graph.url + "/health/status", timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"
    with urllib.request.urlopen(graph.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    assert "smartreco_executor_request_seconds_bucket" in text
    assert 'smartreco_executor_degraded_total{node="cb-a"}' in text or 'node="cb-b"' in text
