"""Serving-path security fixes (SECURITY.md): O1 optional bearer token on REST and gRPC with open
health/metrics, O2 the bandit rewards the arm the graph recorded for the answer (a forged meta.routing
cannot steer it: the router node checks, so this holds under Seldon's executor too), O3 no exception
text on a 500 and a 400 (not a 500) for a bad routing value or deeply nested JSON."""

import json
import urllib.error
import urllib.request

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from graph_fake_bundle import GraphThread  # noqa: E402
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

TOKEN = "s3cret-token-for-tests-0123456789"


def _req(graph, path, body=None, token=None, raw=None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(graph.url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, text
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("auth"), in_process=True, api_token=TOKEN)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("sec"), in_process=True, mode="epsilon_greedy", cache="off")
    yield g
    g.stop()


# ----------------------------------------------------------------------------------------------- O1
def test_rest_needs_the_bearer_token_but_health_and_metrics_stay_open(secured):
    body = {"jsonData": {"user_id": "7"}}
    code, out = _req(secured, "/api/v1.0/predictions", body)
    assert code == 401 and json.loads(out)["status"]["reason"] == "UNAUTHENTICATED"
    assert _req(secured, "/api/v1.0/predictions", body, token="wrong-token-wrong-token")[0] == 401
    assert _req(secured, "/api/v1.0/feedback", {"reward": 1})[0] == 401
    assert _req(secured, "/api/v1.0/predictions", body, token=TOKEN)[0] == 200
    for path in ("/health/ping", "/health/status", "/ready", "/metrics"):
        assert _req(secured, path)[0] == 200, path


def test_grpc_needs_the_token_in_metadata(secured):
    channel = grpc.insecure_channel(secured.grpc_target)
    stub = prediction_pb2_grpc.SeldonStub(channel)
    msg = json_format.ParseDict({"jsonData": {"user_id": "7"}}, prediction_pb2.SeldonMessage())
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(msg, timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(msg, timeout=30, metadata=(("authorization", "Bearer nope-nope-nope-nope"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        resp = stub.Predict(msg, timeout=30, metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert len(json_format.MessageToDict(resp)["jsonData"]["recommendations"]) == 10
    finally:
        channel.close()


def test_token_comes_from_env_or_secret_file_and_is_compared_whole(tmp_path, monkeypatch):
    from inference_graph.executor.auth import TokenConfigError, bearer_ok, load_token

    monkeypatch.delenv("SMARTRECO_API_TOKEN", raising=False)
    monkeypatch.delenv("SMARTRECO_API_TOKEN_FILE", raising=False)
    assert load_token() is None  # auth off
    monkeypatch.setenv("SMARTRECO_API_TOKEN", TOKEN)
    assert load_token() == TOKEN
    secret = tmp_path / "token"
    secret.write_text("from-the-secret-file-0123\n")
    assert load_token(str(secret)) == "from-the-secret-file-0123"  # the file wins, newline stripped
    secret.write_text("short")
    with pytest.raises(TokenConfigError, match="shorter"):
        load_token(str(secret))
    assert bearer_ok(f"Bearer {TOKEN}", TOKEN) and bearer_ok(f"bearer {TOKEN}", TOKEN)
    assert not bearer_ok(f"Bearer {TOKEN[:-1]}", TOKEN) and not bearer_ok(TOKEN, TOKEN)
    assert not bearer_ok(f"Basic {TOKEN}", TOKEN) and not bearer_ok(None, TOKEN)
    assert bearer_ok(None, None)


# ----------------------------------------------------------------------------------------------- O2
def _served(graph, user):
    code, resp = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": user}})
    assert code == 200, resp
    return resp


def test_forged_routing_cannot_steer_the_bandit(graph):
    router = graph.graph.engine.transport.objects["ab-router"]
    resp = _served(graph, "11")
    served = resp["meta"]["routing"]["ab-router"]
    forged_arm, served_arm = router.arms[1 - served], router.arms[served]
    before = router.arm_stats()
    forged = {**resp, "meta": {**resp["meta"], "routing": {"ab-router": 1 - served}}}
    code, out = graph.post(
        "/api/v1.0/feedback", {"request": {"jsonData": {"user_id": "11"}}, "response": forged, "reward": 100.0}
    )
    assert code == 200, out
    assert out["meta"]["tags"]["routing_known"] is True  # the graph knows which arm served it
    after = router.arm_stats()
    assert after[forged_arm]["reward_sum"] == before[forged_arm]["reward_sum"]
    assert after[served_arm]["reward_sum"] == before[served_arm]["reward_sum"] + 100.0


def test_feedback_for_an_unknown_or_foreign_request_counts_no_arm(graph):
    router = graph.graph.engine.transport.objects["ab-router"]
    before = router.arm_stats()
    fake = {"meta": {"puid": "never-served", "routing": {"ab-router": 1}}, "jsonData": {}}
    code, out = graph.post(
        "/api/v1.0/feedback", {"request": {"jsonData": {"user_id": "12"}}, "response": fake, "reward": 100.0}
    )
    assert code == 200 and out["meta"]["tags"]["routing_known"] is False
    resp = _served(graph, "13")  # someone else's answer, replayed as user 14's
    code, out = graph.post(
        "/api/v1.0/feedback", {"request": {"jsonData": {"user_id": "14"}}, "response": resp, "reward": 100.0}
    )
    assert code == 200 and out["meta"]["tags"]["routing_known"] is False
    assert {a: s["reward_sum"] for a, s in router.arm_stats().items()} == {
        a: s["reward_sum"] for a, s in before.items()
    }


# ----------------------------------------------------------------------------------------------- O3
@pytest.mark.parametrize("bad", ["x", None, [1], 1.5, True])
def test_non_numeric_routing_is_a_400_naming_it(graph, bad):
    resp = _served(graph, "15")
    resp["meta"]["routing"] = {"ab-router": bad} if bad is not None else "oops"
    code, out = graph.post(
        "/api/v1.0/feedback", {"request": {"jsonData": {"user_id": "15"}}, "response": resp, "reward": 1.0}
    )
    assert code == 400, out
    assert out["status"]["info"].startswith("response.meta.routing")


@pytest.mark.parametrize("raw", [b"[" * 200_000, b'{"a":' * 50 + b"1" + b"}" * 50, b"[" * 40 + b"]" * 40])
def test_deeply_nested_json_is_a_400_not_a_500(graph, raw):
    code, out = graph.post("/api/v1.0/predictions", raw, raw=True)
    assert code == 400, out
    assert "nested deeper than" in out["status"]["info"] or "malformed JSON" in out["status"]["info"]


def test_huge_body_is_a_400(graph):
    code, out = graph.post("/api/v1.0/predictions", b"[" + b"1," * 600_000 + b"1]", raw=True)
    assert code == 400 and "larger than" in out["status"]["info"]


def test_a_crash_answers_500_without_exception_text(graph, monkeypatch):
    async def boom(_message):
        raise ValueError("secret detail /etc/smartreco/internal.yaml")

    monkeypatch.setattr(graph.graph.engine, "predict", boom)
    code, out = _req(graph, "/api/v1.0/predictions", {"jsonData": {"user_id": "7"}})
    info = json.loads(out)["status"]["info"]
    assert code == 500 and "secret" not in info and "ValueError" not in info and "error id" in info
    channel = grpc.insecure_channel(graph.grpc_target)
    try:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(json_format.ParseDict({"jsonData": {"user_id": "7"}}, prediction_pb2.SeldonMessage()),
                         timeout=30)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "secret" not in err.value.details() and "error id" in err.value.details()
    finally:
        channel.close()


def test_depth_check_unit():
    from inference_graph.executor.limits import check_depth, loads_limited
    from smartreco.schema import RequestValidationError

    check_depth({"a": [{"b": [1]}]}, limit=4)
    with pytest.raises(RequestValidationError, match="deeper than 3"):
        check_depth({"a": [{"b": [1]}]}, limit=3)
    assert loads_limited(b'{"jsonData": {"user_id": "1"}}') == {"jsonData": {"user_id": "1"}}
