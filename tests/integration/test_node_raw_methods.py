"""The graph's ROUTER and MODEL nodes answer through Seldon's raw methods (``route_raw``, ``predict_raw``) with
the reply the wrapper builds for the plain method, and the wrapper updates its metrics store once per call
instead of twice. Checked against seldon-core's own Flask app (``get_rest_microservice``), plain and raw side
by side; a node without the plain method, and a gRPC message, take the wrapper's own path."""

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import graph_fake_bundle as fake  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from seldon_core import seldon_methods  # noqa: E402
from seldon_core.metrics import SeldonMetrics  # noqa: E402
from seldon_core.proto import prediction_pb2  # noqa: E402
from seldon_core.user_model import SeldonNotImplementedError  # noqa: E402
from seldon_core.wrapper import get_rest_microservice  # noqa: E402

from inference_graph.ab_router import ABRouter  # noqa: E402
from inference_graph.cf_model import CFModel  # noqa: E402
from inference_graph.feature_transformer import FeatureTransformer  # noqa: E402
from inference_graph.hybrid_recommender import HybridRecommender  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]


class CountingMetrics(SeldonMetrics):
    """The wrapper's metrics store, counting its updates (each is six Manager round trips)."""

    updates = 0

    def update(self, custom_metrics, method):
        self.updates += 1
        return super().update(custom_metrics, method)


def _plain(cls):
    """The same node class without its raw methods: the wrapper's plain path."""

    def refuse(self, request):
        raise SeldonNotImplementedError("plain path")

    return type(f"Plain{cls.__name__}", (cls,), {"route_raw": refuse, "predict_raw": refuse})


def _without_timer_values(reply: dict) -> dict:
    """The reply with TIMER values blanked (elapsed time differs between two calls)."""
    metrics = [{**m, "value": None} if m["type"] == "TIMER" else m for m in reply["meta"].get("metrics", [])]
    return {**reply, "meta": {**reply["meta"], "metrics": metrics}}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRECO_FEATURE_READER", "graph_fake_bundle:read_features")
    monkeypatch.setenv("SMARTRECO_BUNDLE_LOADER", "graph_fake_bundle:load")
    monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("SMARTRECO_METRICS_FLUSH_S", "0")  # every call hands its metrics over
    monkeypatch.setenv("PREDICTIVE_UNIT_ID", "node-x")
    monkeypatch.setenv("PREDICTIVE_UNIT_IMAGE", "smartreco/serving:test")
    return tmp_path


def _serve(node):
    metrics = CountingMetrics()
    return get_rest_microservice(node, metrics).test_client(), metrics


def test_route_raw_answers_as_the_plain_route_with_one_metrics_update(env):
    replies, updates = [], []
    for cls in (ABRouter, _plain(ABRouter)):
        node = cls(mode="fixed", store=str(env / f"arms-{cls.__name__}.sqlite"))  # the user's arm: the same
        node.load()
        client, metrics = _serve(node)
        body = {"jsonData": {"user_id": "3"}, "meta": {"puid": "p-1", "tags": {"client": "x"}}}
        resp = client.post("/route", json=body)
        assert resp.status_code == 200
        replies.append(_without_timer_values(resp.get_json()))
        updates.append(metrics.updates)
        assert client.post("/route", json={"jsonData": {"user_id": ""}}).status_code == 400
    assert replies[0] == replies[1]
    assert replies[0]["data"]["tensor"]["values"] in ([0], [1])
    assert updates == [1, 2]


def test_predict_raw_answers_as_the_plain_predict_with_one_metrics_update(env):
    uri = str(fake.write(env / "bundle"))
    replies, updates = [], []
    for cls in (HybridRecommender, _plain(HybridRecommender)):
        node = cls(model_uri=uri, cache="off", append_feedback=False)
        node.name = "hybrid-a"
        node.load()
        client, metrics = _serve(node)
        body = {
            "jsonData": {"user_id": "7", "num_recommendations": 5},
            "meta": {"puid": "p-2", "tags": {"client": "x"}, "requestPath": {"ab-router": "img"}},
        }
        resp = client.post("/predict", json=body)
        assert resp.status_code == 200
        reply = _without_timer_values(resp.get_json())
        for volatile in ("request_id", "timestamp"):  # a fresh id and clock per call
            reply["jsonData"].pop(volatile)
        reply["meta"]["tags"].pop("request_id")
        replies.append(reply)
        updates.append(metrics.updates)
        bad = client.post("/predict", json={"jsonData": {"user_id": "7", "num_recommendations": 0}})
        assert bad.status_code == 400 and "num_recommendations" in bad.get_json()["status"]["info"]
    assert replies[0] == replies[1]
    assert len(replies[0]["jsonData"]["recommendations"]) == 5
    assert replies[0]["meta"]["requestPath"] == {"node-x": "smartreco/serving:test", "ab-router": "img"}
    assert updates == [1, 2]


def test_a_cf_models_predict_raw_answers_as_its_plain_predict(env):
    uri = str(fake.write(env / "bundle"))
    message = {"request": {"user_id": "7", "num_recommendations": 5}, "history": ["10", "11"]}
    replies, updates = [], []
    for cls in (CFModel, _plain(CFModel)):
        node = cls(model_uri=uri)
        node.load()
        client, metrics = _serve(node)
        resp = client.post("/predict", json={"jsonData": message, "meta": {"puid": "p-3"}})
        assert resp.status_code == 200
        replies.append(_without_timer_values(resp.get_json()))
        updates.append(metrics.updates)
    assert replies[0] == replies[1] and replies[0]["jsonData"]["candidates"]
    assert updates == [1, 2]


def test_a_node_without_the_plain_method_leaves_the_call_to_the_wrapper(env):
    node = FeatureTransformer()
    with pytest.raises(SeldonNotImplementedError):
        node.predict_raw({"jsonData": {"user_id": "7"}})
    with pytest.raises(SeldonNotImplementedError):
        node.route_raw({"jsonData": {"user_id": "7"}})


def test_a_grpc_message_takes_the_wrappers_own_path(env):
    node = ABRouter(store=str(env / "arms.sqlite"))
    node.load()
    msg = json_format.ParseDict({"jsonData": {"user_id": "3"}}, prediction_pb2.SeldonMessage())
    reply = seldon_methods.route(node, msg, CountingMetrics())
    assert isinstance(reply, prediction_pb2.SeldonMessage)
    assert reply.data.tensor.values[0] in (0.0, 1.0)
