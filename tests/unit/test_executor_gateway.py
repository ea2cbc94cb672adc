"""The local executor's ingress (inference_graph/executor/gateway.py): what a browser page on another
site, or one that rebinds its own name to 127.0.0.1, can no longer do with the executor; that JSON and
Seldon's form encoding still work; CORS only for configured origins; the API token never reaches a node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from inference_graph.executor.gateway import IngressPolicy, host_name
from inference_graph.executor.metrics import ExecutorMetrics
from inference_graph.executor.rest import make_app

pytestmark = [pytest.mark.unit]

TOKEN = "gateway-test-token-0123456789"
BODY = {"jsonData": {"user_id": "7"}}
FEEDBACK = {"reward": 1.0, "response": {"meta": {"puid": "p-1"}}}


class FakeEngine:
    """Records what reached the graph walk; answers like a graph."""

    def __init__(self) -> None:
        self.metrics = ExecutorMetrics()
        self.calls: list[tuple[str, Any]] = []

    async def predict(self, message: dict) -> dict:
        self.calls.append(("predict", message))
        return {"jsonData": {"recommendations": []}, "meta": {}}

    async def feedback(self, message: dict) -> dict:
        self.calls.append(("feedback", message))
        return {"meta": {}}

    async def health(self) -> dict:
        return {"node": True}


def run(engine: FakeEngine, requests: list[dict], **app_kw) -> list[tuple[int, dict, Any]]:
    """Each request ({method, path, headers, data}) against the REST app: (status, headers, json|None)."""

    async def main():
        app = make_app(engine, **app_kw)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            out = []
            for r in requests:
                resp = await client.request(r.get("method", "POST"), r["path"], headers=r.get("headers", {}),
                                            data=r.get("data"))
                text = await resp.text()
                try:
                    doc = json.loads(text)
                except ValueError:
                    doc = None
                out.append((resp.status, dict(resp.headers), doc))
            return out

    return asyncio.run(main())


def post(path: str, body: Any = BODY, ctype: str | None = "application/json", **headers: str) -> dict:
    h = dict(headers)
    if ctype is not None:
        h["Content-Type"] = ctype
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return {"path": path, "headers": h, "data": data}


def test_a_cross_site_simple_post_is_415_and_reaches_nothing():
    engine = FakeEngine()
    results = run(engine, [
        post("/api/v1.0/feedback", FEEDBACK, "text/plain"),
        post("/api/v1.0/predictions", BODY, "text/plain;charset=UTF-8"),
        post("/api/v1.0/feedback", FEEDBACK, None),  # a Blob without a type: no Content-Type at all
        post("/api/v1.0/feedback", FEEDBACK, "multipart/form-data; boundary=x"),
    ])
    for code, _, doc in results:
        assert code == 415 and doc["status"]["reason"] == "UNSUPPORTED_MEDIA_TYPE"
        assert "Content-Type" in doc["status"]["info"]
    assert engine.calls == []


def test_json_and_seldons_form_encoding_are_accepted():
    from urllib.parse import urlencode

    engine = FakeEngine()
    results = run(engine, [
        post("/api/v1.0/predictions", BODY, "application/json; charset=utf-8"),
        post("/api/v1.0/predictions", urlencode({"json": json.dumps(BODY)}), "application/x-www-form-urlencoded"),
        post("/api/v1.0/feedback", FEEDBACK, "application/cloudevents+json"),
        post("/api/v1.0/predictions", urlencode({"data": "x"}), "application/x-www-form-urlencoded"),
    ])
    assert [r[0] for r in results] == [200, 200, 200, 400]
    assert results[3][2]["status"]["info"].startswith("json: form field required")
    assert [c for c, _ in engine.calls] == ["predict", "predict", "feedback"]
    assert engine.calls[1][1] == BODY


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io:9", "10.0.0.5:8000"])
def test_a_rebinding_host_is_421_on_every_path(host):
    engine = FakeEngine()
    results = run(engine, [
        post("/api/v1.0/feedback", FEEDBACK, Host=host),
        {"method": "GET", "path": "/metrics", "headers": {"Host": host}},
    ])
    assert [r[0] for r in results] == [421, 421] and results[0][2]["status"]["reason"] == "MISDIRECTED"
    assert engine.calls == []


def test_loopback_and_configured_host_names_are_served():
    engine = FakeEngine()
    hosts = ["localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST.", "reco.internal:443"]
    results = run(engine, [post("/api/v1.0/predictions", Host=h) for h in hosts],
                  ingress=IngressPolicy.create(hosts="reco.internal", origins=""))
    assert [r[0] for r in results] == [200] * len(hosts)
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM.:80") == "example.com"


def test_the_allowed_hosts_setting_is_read(monkeypatch):
    monkeypatch.setenv("SMARTRECO_ALLOWED_HOSTS", "a.example, b.example:9")
    monkeypatch.setenv("SMARTRECO_CORS_ORIGINS", "https://shop.example/")
    policy = IngressPolicy.create()
    assert policy.host_ok("b.example:8000") and policy.host_ok("a.example") and not policy.host_ok("c.example")
    assert policy.cors_ok("https://shop.example") and not policy.cors_ok("http://shop.example")


def test_cors_only_for_configured_origins():
    engine = FakeEngine()
    shop = "https://shop.example"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    results = run(engine, [
        post("/api/v1.0/feedback", FEEDBACK, Origin="https://evil.example"),  # JSON, but cross-site
        {"method": "OPTIONS", "path": "/api/v1.0/feedback", "headers": {"Origin": "https://evil.example", **preflight}},
        {"method": "OPTIONS", "path": "/api/v1.0/feedback", "headers": {"Origin": shop, **preflight}},
        post("/api/v1.0/predictions", Origin=shop),
        post("/api/v1.0/predictions", Origin="null"),  # sandboxed frame / file: page
    ], ingress=IngressPolicy.create(hosts="", origins=shop))
    codes = [r[0] for r in results]
    assert codes == [403, 403, 204, 200, 403]
    assert "Access-Control-Allow-Origin" not in results[0][1] and "Access-Control-Allow-Origin" not in results[1][1]
    assert results[2][1]["Access-Control-Allow-Origin"] == shop
    assert "POST" in results[2][1]["Access-Control-Allow-Methods"]
    assert "Authorization" in results[2][1]["Access-Control-Allow-Headers"]
    assert results[3][1]["Access-Control-Allow-Origin"] == shop and "Origin" in results[3][1]["Vary"]
    assert [c for c, _ in engine.calls] == ["predict"]


def test_no_cors_by_default_but_the_pages_own_origin_is_not_cross_site():
    engine = FakeEngine()

    async def main():
        app = make_app(engine, ingress=IngressPolicy.create(hosts="", origins=""))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            own = f"http://127.0.0.1:{client.port}"
            same = await client.post("/api/v1.0/predictions", json=BODY, headers={"Origin": own})
            other = await client.post("/api/v1.0/predictions", json=BODY, headers={"Origin": "http://localhost:1"})
            return same.status, "Access-Control-Allow-Origin" in same.headers, other.status

    assert asyncio.run(main()) == (200, False, 403)


def test_with_a_token_the_preflight_needs_none_and_the_401_carries_cors():
    engine = FakeEngine()
    shop = "https://shop.example"
    preflight = {"Origin": shop, "Access-Control-Request-Method": "POST"}
    results = run(engine, [
        {"method": "OPTIONS", "path": "/api/v1.0/predictions", "headers": preflight},
        post("/api/v1.0/predictions", Origin=shop),
        post("/api/v1.0/predictions", Origin=shop, Authorization=f"Bearer {TOKEN}"),
    ], token=TOKEN, ingress=IngressPolicy.create(hosts="", origins=shop))
    assert [r[0] for r in results] == [204, 401, 200]
    assert results[1][1]["Access-Control-Allow-Origin"] == shop  # the page can read why it failed


def test_ingress_refusals_are_counted():
    engine = FakeEngine()
    run(engine, [post("/api/v1.0/feedback", FEEDBACK, "text/plain"), post("/api/v1.0/feedback", Host="x.example")])
    value = engine.metrics.registry.get_sample_value
    assert value("smartreco_executor_requests_total", {"protocol": "rest", "endpoint": "ingress", "code": "415"}) == 1
    assert value("smartreco_executor_requests_total", {"protocol": "rest", "endpoint": "ingress", "code": "421"}) == 1


@pytest.mark.parametrize("launcher", ["processes", "containers"])
def test_the_api_token_never_reaches_a_node(monkeypatch, tmp_path, launcher):
    from inference_graph.executor import containers, processes
    from inference_graph.executor.graph import GraphNodeSpec

    monkeypatch.setenv("SMARTRECO_API_TOKEN", TOKEN)
    monkeypatch.setenv("SMARTRECO_API_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("SMARTRECO_SOMETHING_ELSE", "kept")
    node = GraphNodeSpec(name="n", type="MODEL", class_name="m.C", image="img")
    extra = {"SMARTRECO_API_TOKEN": TOKEN, "GUNICORN_KEEPALIVE": "60"}  # not even when handed over explicitly
    if launcher == "processes":
        seen: dict = {}

        class Popen:
            def __init__(self, cmd, env, **kw):
                seen.update(env)

        monkeypatch.setattr(processes.subprocess, "Popen", Popen)
        monkeypatch.setattr(processes, "microservice_bin", lambda: "seldon-core-microservice")
        processes.start_node(node, Path(tmp_path), extra_env=extra)
        env = seen
    else:
        group = containers.ContainerGroup.__new__(containers.ContainerGroup)
        group.image, group.threads, group.grpc_workers, group.extra_env = "img", 1, 1, extra
        env = group._env(node, (1, 2, 3))
    assert "SMARTRECO_API_TOKEN" not in env and "SMARTRECO_API_TOKEN_FILE" not in env
    assert TOKEN not in json.dumps(env)
    assert env["SMARTRECO_SOMETHING_ELSE"] == "kept" and env["GUNICORN_KEEPALIVE"] == "60"


def test_a_node_answering_200_with_a_torn_body_is_a_node_failure_not_a_500():
    from aiohttp import web

    from inference_graph.executor.graph import GraphNodeSpec
    from inference_graph.executor.transport import NodeCallError, RestTransport

    async def torn(_):
        return web.Response(text='{"jsonData": {"recommendations": [', content_type="application/json")

    async def main():
        app = web.Application()
        app.router.add_post("/predict", torn)
        async with TestServer(app, host="127.0.0.1") as server:
            transport = RestTransport({"n": f"http://127.0.0.1:{server.port}"})
            node = GraphNodeSpec(name="n", type="MODEL", class_name="m.C", image="img")
            try:
                with pytest.raises(NodeCallError) as err:
                    await transport.call(node, "predict", {"jsonData": {}})
            finally:
                await transport.close()
        return err.value

    err = asyncio.run(main())
    assert err.node == "n" and "invalid JSON" in str(err)
