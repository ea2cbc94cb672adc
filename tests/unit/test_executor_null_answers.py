"""A node that answers 200 with no message (an empty body, or a message without ``jsonData``) is a failed call:
the executor degrades or answers 503, never a 200 whose ``jsonData`` is null (seen once in fresh-clone CI on
a loaded machine: the fused arm's reply reached the client as ``{"jsonData": null}``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from inference_graph.executor.engine import GraphEngine, GraphUnavailable
from inference_graph.executor.graph import GraphSpec, load_graph
from inference_graph.executor.transport import NodeCallError, RestTransport

pytestmark = [pytest.mark.unit]


class _Transport:
    """Routes to arm 0; the arm answers with ``arm_reply``."""

    def __init__(self, arm_reply: dict) -> None:
        self.arm_reply = arm_reply

    async def call(self, node: Any, method: str, message: dict) -> dict:
        if method == "route":
            return {"data": {"ndarray": [[0]]}}
        return self.arm_reply

    async def healthy(self, node: Any) -> bool:
        return True

    async def close(self) -> None:
        return None


def _fused() -> GraphSpec:
    return load_graph(fused=True)


@pytest.mark.parametrize("reply", [{}, {"meta": {"tags": {}}}, {"jsonData": None, "meta": {}}])
def test_an_arm_answering_without_json_data_fails_the_request(reply):
    engine = GraphEngine(_fused(), _Transport(reply))
    with pytest.raises(GraphUnavailable):
        asyncio.run(engine.predict({"jsonData": {"user_id": "7"}}))


class _NullCombiner(_Transport):
    """Five-node graph: every input step answers; the arm's combiner answers ``aggregate`` without jsonData."""

    async def call(self, node: Any, method: str, message: dict) -> dict:
        if method == "route":
            return {"data": {"ndarray": [[0]]}}
        if method == "aggregate":
            return self.arm_reply
        return {"jsonData": {"request": {"user_id": "7"}}, "meta": {}}


@pytest.mark.parametrize("reply", [{}, {"jsonData": None, "meta": {}}])
def test_a_combiner_answering_without_json_data_fails_the_request(reply):
    engine = GraphEngine(load_graph(), _NullCombiner(reply))
    with pytest.raises(GraphUnavailable, match="every child failed.*hybrid-a"):  # the fronts answer 503
        asyncio.run(engine.predict({"jsonData": {"user_id": "7"}}))


def test_an_arm_answering_with_json_data_is_the_answer():
    engine = GraphEngine(_fused(), _Transport({"jsonData": {"recommendations": []}, "meta": {}}))
    out = asyncio.run(engine.predict({"jsonData": {"user_id": "7"}}))
    assert out["jsonData"] == {"recommendations": []}


@pytest.mark.parametrize("body", [b"", b"[1, 2]", b"null"])
def test_rest_transport_refuses_a_200_without_a_json_object(body):
    async def run() -> None:
        async def reply(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/predict", reply)
        async with TestServer(app) as server:
            node = _fused().root.children[0]
            transport = RestTransport({node.name: str(server.make_url("")).rstrip("/")})
            try:
                with pytest.raises(NodeCallError, match="without a JSON message"):
                    await transport.call(node, "predict", {"jsonData": {}})
            finally:
                await transport.close()

    asyncio.run(run())
