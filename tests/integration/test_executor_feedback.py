"""The graph's feedback path with the event service the executor starts: an acknowledged feedback is in the
event log with the id the answer returned (appended by the CF node before the 200), a retried id is
acknowledged without being applied twice (router arm, log), served answers reach the log as impressions
through the request logger, and bad feedback is a 400 naming the field."""

import time

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import grpc  # noqa: E402
from graph_fake_bundle import GraphThread

from smartreco.feedback import FEEDBACK, IMPRESSION, iter_records, read_dataset

pytestmark = [pytest.mark.serving, pytest.mark.integration]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fblog")
    g = GraphThread(tmp, in_process=True, mode="epsilon_greedy", cache="local", feedback_log=str(tmp / "feedback"))
    g.log_dir = tmp / "feedback"
    yield g
    g.stop()


def _records(graph, kind):
    return {r["id"]: r for r in iter_records(graph.log_dir) if r["kind"] == kind}


def _await_impression(graph, request_id, within_s=20.0):
    """The request logger is asynchronous and best effort, as Seldon's: poll (bounded)."""
    deadline = time.monotonic() + within_s
    while (imp := _records(graph, IMPRESSION).get(request_id)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert imp is not None, f"no impression for {request_id} after {within_s:.0f} s"
    return imp


def _predict(graph, user):
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": user, "num_recommendations": 5}})
    assert code == 200, body
    return body


def test_acknowledged_feedback_is_in_the_log_with_its_id(graph):
    resp = _predict(graph, "21")
    item = resp["jsonData"]["recommendations"][1]["item_id"]
    code, out = graph.post(
        "/api/v1.0/feedback",
        {
            "request": {"jsonData": {"user_id": "21"}},
            "response": resp,
            "reward": 1.0,
            "truth": {"item_id": item, "interaction_type": "click"},
        },
    )
    assert code == 200, out
    fid = out["meta"]["tags"]["feedback_id"]
    assert out["meta"]["tags"]["duplicate"] is False
    rec = _records(graph, FEEDBACK)[fid]  # on disk already when the 200 came back
    assert (rec["user_id"], rec["item_id"], rec["interaction_type"]) == ("21", item, "click")
    assert rec["request_id"] == resp["meta"]["puid"] and rec["rank"] == 2
    assert rec["variant"] == resp["jsonData"]["variant"]
    imp = _await_impression(graph, resp["jsonData"]["request_id"])  # the served answer, via the request logger
    assert imp["items"] == [r["item_id"] for r in resp["jsonData"]["recommendations"]]
    df = read_dataset(graph.log_dir)
    assert fid in set(df["feedback_id"])


def test_retried_feedback_id_is_acknowledged_once_and_not_double_counted(graph):
    router = graph.graph.engine.transport.objects["ab-router"]
    resp = _predict(graph, "22")
    arm = router.arms[resp["meta"]["routing"]["ab-router"]]
    pulls = router.arm_stats()[arm]["pulls"]
    body = {
        "feedback_id": "client-retry-1",
        "request": {"jsonData": {"user_id": "22"}},
        "response": resp,
        "reward": 3.0,
        "truth": {"item_id": "77", "interaction_type": "like"},
    }
    first = graph.post("/api/v1.0/feedback", body)
    second = graph.post("/api/v1.0/feedback", body)
    assert first[0] == second[0] == 200
    assert first[1]["meta"]["tags"]["feedback_id"] == second[1]["meta"]["tags"]["feedback_id"] == "client-retry-1"
    assert (first[1]["meta"]["tags"]["duplicate"], second[1]["meta"]["tags"]["duplicate"]) == (False, True)
    assert router.arm_stats()[arm]["pulls"] == pulls + 1  # the arm learned once
    stored = [r for r in iter_records(graph.log_dir, dedupe=False) if r["id"] == "client-retry-1"]
    assert len(stored) == 1


def test_blind_retry_without_id_is_recognised_from_the_served_response(graph):
    resp = _predict(graph, "23")
    body = {
        "request": {"jsonData": {"user_id": "23"}},
        "response": resp,
        "reward": 1.0,
        "truth": {"item_id": "5", "interaction_type": "click"},
    }
    a, b = graph.post("/api/v1.0/feedback", body)[1], graph.post("/api/v1.0/feedback", body)[1]
    assert a["meta"]["tags"]["feedback_id"] == b["meta"]["tags"]["feedback_id"]
    assert b["meta"]["tags"]["duplicate"] is True
    # a different action on the same answer is a different feedback
    other = graph.post("/api/v1.0/feedback", {**body, "truth": {"item_id": "6", "interaction_type": "click"}})[1]
    assert other["meta"]["tags"]["duplicate"] is False


def test_grpc_feedback_carries_its_id_in_truth(graph):
    from google.protobuf import json_format
    from seldon_core.proto import prediction_pb2, prediction_pb2_grpc

    with grpc.insecure_channel(graph.grpc_target) as ch:
        stub = prediction_pb2_grpc.SeldonStub(ch)
        fb = json_format.ParseDict(
            {
                "request": {"jsonData": {"user_id": "24"}},
                "reward": 1.0,
                "truth": {"jsonData": {"item_id": "9", "interaction_type": "purchase", "feedback_id": "g-1"}},
            },
            prediction_pb2.Feedback(),
        )
        outs = [json_format.MessageToDict(stub.SendFeedback(fb, timeout=30)) for _ in range(2)]
    assert [o["meta"]["tags"]["feedback_id"] for o in outs] == ["g-1", "g-1"]
    assert [o["meta"]["tags"]["duplicate"] for o in outs] == [False, True]
    assert _records(graph, FEEDBACK)["g-1"]["interaction_type"] == "purchase"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "request": {"jsonData": {"user_id": "1"}},
                "reward": 1,
                "truth": {"item_id": "5", "interaction_type": "poke"},
            },
            "truth.interaction_type",
        ),
        ({"request": {"jsonData": {"user_id": "1"}}, "reward": 1, "truth": {"item_id": "5"}}, "truth.interaction_type"),
        (
            {
                "request": {"jsonData": {"user_id": "1"}},
                "reward": 1,
                "truth": {"item_id": {"x": 1}, "interaction_type": "click"},
            },
            "truth.item_id",
        ),
        ({"reward": 1.0}, "request.jsonData.user_id"),
        ({"request": {"jsonData": {"user_id": "1"}}, "reward": 1, "feedback_id": ""}, "feedback_id"),
    ],
)
def test_bad_feedback_is_400_naming_the_field_and_not_logged(graph, body, field):
    before = sum(1 for _ in iter_records(graph.log_dir))
    code, out = graph.post("/api/v1.0/feedback", body)
    assert code == 400 and out["status"]["info"].startswith(field), out
    assert sum(1 for _ in iter_records(graph.log_dir)) == before


def test_ignore_is_logged_as_a_bare_reward(graph):
    code, out = graph.post(
        "/api/v1.0/feedback",
        {
            "request": {"jsonData": {"user_id": "25"}},
            "reward": 0,
            "truth": {"item_id": "8", "interaction_type": "ignore"},
        },
    )
    assert code == 200
    rec = _records(graph, FEEDBACK)[out["meta"]["tags"]["feedback_id"]]
    assert rec["reward"] == 0.0 and "item_id" not in rec


def test_cli_feedback_prints_its_id_and_is_attributed_to_the_last_answer(graph):
    from click.testing import CliRunner

    from smartreco.cli.serve import feedback_cmd

    resp = _predict(graph, "26")
    result = CliRunner().invoke(feedback_cmd, ["--user", "26", "--item", "3", "--type", "purchase", "--url", graph.url])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("feedback_id ")
    rec = _records(graph, FEEDBACK)[first.split()[1]]
    # sent without the response: joined to the impression it is about (A/B analysis joins on request_id)
    assert rec["request_id"] == resp["meta"]["puid"] and rec["variant"] == resp["jsonData"]["variant"]


def test_a_feedback_the_event_service_did_not_store_is_not_acknowledged_and_a_retry_completes(tmp_path):
    """The appending node is called first; if its append fails the feedback is a non-200 and the nodes above
    it never run; the retry (same id) once the event service is back applies everything exactly once."""
    from inference_graph.executor.event_service import EventServiceProcess
    from smartreco.ports import free_port
    from smartreco.serving.graph_state import GraphState

    port = free_port()
    g = GraphThread(tmp_path, in_process=True, mode="epsilon_greedy", events_url=f"http://127.0.0.1:{port}")
    events = None
    try:
        router = g.graph.engine.transport.objects["ab-router"]
        resp = _predict(g, "41")
        arm = router.arms[resp["meta"]["routing"]["ab-router"]]
        pulls = router.arm_stats()[arm]["pulls"]
        body = {
            "request": {"jsonData": {"user_id": "41"}},
            "response": resp,
            "reward": 1.0,
            "truth": {"jsonData": {"item_id": "77", "interaction_type": "click", "feedback_id": "down-1"}},
        }
        code, out = g.post("/api/v1.0/feedback", body)  # no event service listening
        assert code == 503, out
        state = GraphState(tmp_path / "graph-state" / "state.sqlite")
        assert router.arm_stats()[arm]["pulls"] == pulls and state.history("41") == []  # nothing above it ran
        events = EventServiceProcess(tmp_path / "events", tmp_path / "logs", port=port)
        events.start()
        code, out = g.post("/api/v1.0/feedback", body)  # the client's retry, same id
        assert code == 200 and out["meta"]["tags"] == {**out["meta"]["tags"], "feedback_id": "down-1",
                                                         "duplicate": False}  # fmt: skip
        code, out = g.post("/api/v1.0/feedback", body)
        assert code == 200 and out["meta"]["tags"]["duplicate"] is True
        assert router.arm_stats()[arm]["pulls"] == pulls + 1 and state.history("41") == ["77"]
        assert [r["id"] for r in iter_records(tmp_path / "events", dedupe=False) if r["kind"] == FEEDBACK] == ["down-1"]
    finally:
        g.stop()
        if events is not None:
            events.stop()
