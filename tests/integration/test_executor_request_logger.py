"""The local executor's request logger follows Seldon's executor: CloudEvents (binary mode) from the nodes
that have ``logger`` when their input step / aggregate / output step runs (a ROUTER's route never logs),
feedback events before a node's children, asynchronous and best effort (a dead endpoint fails nothing);
per-call timeouts come from the deployment's ``seldon.io/rest-timeout``."""

import asyncio

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

from aiohttp import web  # noqa: E402
from graph_fake_bundle import node_env, write  # noqa: E402

from inference_graph.executor.engine import GraphEngine  # noqa: E402
from inference_graph.executor.fusion import MODEL_URI_PARAMS  # noqa: E402
from inference_graph.executor.graph import load_graph, override_parameters  # noqa: E402
from inference_graph.executor.request_logger import RequestLogger  # noqa: E402
from inference_graph.executor.transport import InProcessTransport  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]


def _graph(tmp_path, monkeypatch, fused=False, mode=None):
    for k, v in node_env().items():
        if k != "PYTHONPATH":
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "state.sqlite"))
    monkeypatch.delenv("SMARTRECO_EVENTS_URL", raising=False)
    g = load_graph(fused=fused)
    bundle = str(write(tmp_path / "bundle"))
    override_parameters(g, {"*": dict.fromkeys(MODEL_URI_PARAMS, bundle),
                            "ab-router": {"store": str(tmp_path / "arms.sqlite")}})  # fmt: skip
    if mode:
        for n in g.nodes():
            if n.logger:
                n.logger["mode"] = mode
    return g


async def _run(graph, flow):
    events = []

    async def sink(request):
        events.append((dict(request.headers), await request.json()))
        return web.json_response({"stored": True})

    app = web.Application()
    app.router.add_post("/", sink)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    logger = RequestLogger(source="http://test", deployment=graph.deployment, predictor=graph.predictor,
                           url_override=f"http://127.0.0.1:{port}/")  # fmt: skip
    engine = GraphEngine(graph, InProcessTransport(graph.nodes()), request_logger=logger)
    try:
        out = await flow(engine)
        await logger.drain()
    finally:
        await logger.close()
        await runner.cleanup()
    return out, events


@pytest.mark.parametrize("fused", [False, True], ids=["five-node", "fused"])
def test_one_response_event_per_answer_from_the_arm_that_served(tmp_path, monkeypatch, fused):
    graph = _graph(tmp_path, monkeypatch, fused=fused)
    assert {n.name for n in graph.nodes() if n.logger} == {"hybrid-a", "hybrid-b"}  # as the manifest says

    async def flow(engine):
        answers = [await engine.predict({"jsonData": {"user_id": str(u)}}) for u in range(1, 5)]
        fb = {"request": {"jsonData": {"user_id": "1"}}, "response": answers[0], "reward": 1.0}
        await engine.feedback(fb)
        return answers

    answers, events = asyncio.run(_run(graph, flow))
    responses = [(h, b) for h, b in events if h["ce-type"] == "io.seldon.serving.inference.response"]
    assert len(responses) == len(answers)  # mode response: no request events
    assert not [h for h, _ in events if h["ce-type"] == "io.seldon.serving.inference.request"]
    by_puid = {h["ce-requestid"]: (h, b) for h, b in responses}  # sent concurrently: in any order
    for a in answers:
        h, body = by_puid[a["meta"]["puid"]]
        arm = "hybrid-a" if a["meta"]["routing"]["ab-router"] == 0 else "hybrid-b"
        assert h["ce-modelid"] == arm and h["ce-requestid"] == a["meta"]["puid"]
        assert h["ce-specversion"] == "1.0" and h["ce-id"] and h["ce-inferenceservicename"] == "smartreco"
        assert body["jsonData"]["request_id"] == a["jsonData"]["request_id"]  # the graph's join key
        assert body["jsonData"]["recommendations"] == a["jsonData"]["recommendations"]
    seen = [h for h, _ in events if h["ce-type"] == "io.seldon.serving.feedback"]
    served = "hybrid-a" if answers[0]["meta"]["routing"]["ab-router"] == 0 else "hybrid-b"
    assert [h["ce-modelid"] for h in seen] == [served]  # only the arm on the feedback's route


def test_mode_request_logs_requests_only_and_a_dead_endpoint_fails_nothing(tmp_path, monkeypatch):
    graph = _graph(tmp_path, monkeypatch, mode="request")

    async def flow(engine):
        return await engine.predict({"jsonData": {"user_id": "3"}})

    answer, events = asyncio.run(_run(graph, flow))
    assert [h["ce-type"] for h, _ in events] == ["io.seldon.serving.inference.request"]

    async def dead():
        logger = RequestLogger(source="x", deployment="d", predictor="p", url_override="http://127.0.0.1:9/")
        engine = GraphEngine(graph, InProcessTransport(graph.nodes()), request_logger=logger)
        out = await engine.predict({"jsonData": {"user_id": "3"}})
        await logger.drain()
        await logger.close()
        return out, engine.metrics

    out, metrics = asyncio.run(dead())
    assert len(out["jsonData"]["recommendations"]) == 10
    assert metrics.logger_events.labels("io.seldon.serving.inference.request", "failed")._value.get() == 1


def test_timeout_comes_from_the_deployment_annotation(tmp_path, monkeypatch):
    graph = _graph(tmp_path, monkeypatch)
    assert graph.timeout_ms("rest") == 2000.0  # seldon.io/rest-timeout in the manifest
    graph.annotations["seldon.io/rest-timeout"] = "750"
    assert GraphEngine(graph, InProcessTransport([])).timeout_ms == 750.0
