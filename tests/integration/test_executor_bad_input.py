"""Client mistakes at the executor's edge are 400 / INVALID_ARGUMENT naming the field, never a 500:
a non-object meta, a bad meta.puid, a JSON integer over Python's 4,300-digit limit, NaN, a list longer
than the documented cap; an open context is accepted and its unknown keys are named in meta.tags."""

import pytest

pytest.importorskip("seldon_core")  # serving venv only

import grpc  # noqa: E402
from graph_fake_bundle import GraphThread  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

OK = {"user_id": "7", "num_recommendations": 3}
TOO_LONG = "request body: a number too long"


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("badinput"), in_process=True)
    yield g
    g.stop()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jsonData": OK, "meta": [1]}, "meta"),
        ({"jsonData": OK, "meta": "x"}, "meta"),
        ({"jsonData": OK, "meta": {"puid": 12345}}, "meta.puid"),
        ({"jsonData": OK, "meta": {"puid": "p" * 129}}, "meta.puid"),
        ({"jsonData": {"user_id": "7", "num_recommendations": 101}}, "jsonData.num_recommendations"),
        (b'{"jsonData": {"user_id": "7", "num_recommendations": 1' + b"0" * 4300 + b"}}", TOO_LONG),
        (b'{"jsonData": {"user_id": ' + b"9" * 5000 + b"}}", TOO_LONG),
        (b'{"jsonData": {"user_id": "7", "num_recommendations": NaN}}', "request body: malformed JSON (NaN"),
    ],
)
def test_prediction_mistakes_are_400_naming_the_field(graph, body, field):
    code, out = graph.post("/api/v1.0/predictions", body, raw=isinstance(body, bytes))
    assert code == 400, out
    assert out["status"]["info"].startswith(field), out


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request": {"jsonData": OK}, "response": {"meta": [1]}, "reward": 1}, "response.meta"),
        ({"request": {"jsonData": OK, "meta": {"puid": 5}}, "response": {}, "reward": 1}, "request.meta.puid"),
        ({"response": {"meta": {"puid": "q" * 200}}, "reward": 1}, "response.meta.puid"),
        (b'{"response": {}, "reward": 1' + b"0" * 4400 + b"}", TOO_LONG),
    ],
)
def test_feedback_mistakes_are_400_naming_the_field(graph, body, field):
    code, out = graph.post("/api/v1.0/feedback", body, raw=isinstance(body, bytes))
    assert code == 400, out
    assert out["status"]["info"].startswith(field), out


def test_open_context_is_accepted_and_unknown_keys_are_named_in_tags(graph):
    body = {"jsonData": {**OK, "context": {"channel": "mobile", "locale": "de", "app_build": 77}}}
    code, out = graph.post("/api/v1.0/predictions", body)
    assert code == 200, out
    assert out["meta"]["tags"]["context_unknown_keys"] == ["app_build", "locale"]
    code, out = graph.post("/api/v1.0/predictions", {"jsonData": OK, "meta": {"puid": "client-req-1"}})
    assert code == 200 and out["meta"]["puid"] == "client-req-1"


def test_grpc_bad_puid_is_invalid_argument_naming_the_field(graph):
    from google.protobuf import json_format
    from seldon_core.proto import prediction_pb2, prediction_pb2_grpc

    channel = grpc.insecure_channel(graph.grpc_target)
    try:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        msg = json_format.ParseDict({"jsonData": OK, "meta": {"puid": "p" * 129}}, prediction_pb2.SeldonMessage())
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(msg, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith("meta.puid:")
    finally:
        channel.close()
