"""How the engine reaches a node: in-process (the same classes, no HTTP) or a microservice over REST.

Both speak Seldon JSON messages (``{"jsonData": ..., "meta": {...}}``) so the engine is the same.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from inference_graph.executor.graph import GraphNodeSpec
from smartreco import settings

REST_PATHS = {
    "transform_input": "/transform-input",
    "transform_output": "/transform-output",
    "route": "/route",  # no /api/v1.0/route in the wrapper
    "predict": "/predict",
    "aggregate": "/aggregate",
    "send_feedback": "/api/v1.0/feedback",
}


class NodeCallError(Exception):
    """A node answered with an error (or not at all); ``status`` is its HTTP status when known."""

    def __init__(self, node: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{node}: {message}")
        self.node = node
        self.status = status


class Transport(Protocol):
    async def call(self, node: GraphNodeSpec, method: str, message: dict) -> dict: ...
    async def healthy(self, node: GraphNodeSpec) -> bool: ...
    async def close(self) -> None: ...


def import_class(path: str) -> type:
    module, _, cls = path.rpartition(".")
    return getattr(importlib.import_module(module), cls)


class InProcessTransport:
    """Instantiates every node class once and calls its methods directly (tests, latency floor).

    ``env`` is the nodes' environment, what a node process gets on top of the executor's (``node_env``):
    each node is built, loaded and called under it as a :func:`smartreco.settings.node_environment` overlay,
    in whichever thread runs the call, so a setting a node reads at request time sees it too, and neither
    ``os.environ`` nor another in-process graph of this process does."""

    def __init__(self, nodes: list[GraphNodeSpec], env: Mapping[str, str] | None = None) -> None:
        self.objects: dict[str, Any] = {}
        self.envs: dict[str, dict[str, str]] = {}
        for node in nodes:
            # as the processes' environment (processes.py): the node's name is the wrapper's PREDICTIVE_UNIT_ID
            self.envs[node.name] = {**(env or {}), settings.NODE_ID.name: node.name}
            with settings.node_environment(self.envs[node.name]):
                obj = import_class(node.import_path)(**node.kwargs())
                obj.name = node.name
                if hasattr(obj, "load"):
                    obj.load()
            self.objects[node.name] = obj
        self.failing: set[str] = set()  # nodes made to fail on purpose (degradation tests)

    def _meta(self, obj: Any) -> dict:
        tags = obj.tags() if hasattr(obj, "tags") else {}
        if hasattr(obj, "metrics"):
            obj.metrics()  # drained per call, as the wrapper does; Prometheus export is per process
        return {"tags": tags}

    async def call(self, node: GraphNodeSpec, method: str, message: dict) -> dict:
        if node.name in self.failing:
            raise NodeCallError(node.name, "connection refused (stopped)")
        if method == "send_feedback":  # it waits on the event service's fsync: not on the event loop
            return await asyncio.to_thread(self._call, node, method, message)
        return self._call(node, method, message)

    def _call(self, node: GraphNodeSpec, method: str, message: dict) -> dict:
        with settings.node_environment(self.envs[node.name]):
            return self._call_node(node, method, message)

    def _call_node(self, node: GraphNodeSpec, method: str, message: dict) -> dict:
        obj = self.objects[node.name]
        try:
            if method == "aggregate":
                msgs = message["seldonMessages"]
                out = obj.aggregate([m.get("jsonData") for m in msgs], [[] for _ in msgs])
            elif method == "route":
                return {
                    "data": {"ndarray": [[int(obj.route(message.get("jsonData"), []))]]},
                    "meta": self._meta(obj),
                }
            elif method == "send_feedback":
                if hasattr(obj, "send_feedback_raw"):  # as the wrapper: the raw method wins, its reply as is
                    reply = obj.send_feedback_raw(message)
                    self._meta(obj)
                    return reply
                routing = ((message.get("response") or {}).get("meta") or {}).get("routing") or {}
                out = obj.send_feedback(
                    [], [], float(message.get("reward", 0.0)), message.get("truth"), routing.get(node.name)
                )
                return {"meta": self._meta(obj)}
            else:
                fn = getattr(obj, method)
                try:  # as the wrapper's client_transform_input / client_predict: meta when the method takes it
                    out = fn(message.get("jsonData"), [], meta=message.get("meta") or {})
                except TypeError:
                    out = fn(message.get("jsonData"), [])
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            text = str(getattr(exc, "message", "") or exc)  # SeldonMicroserviceException keeps it in .message
            raise NodeCallError(node.name, text if status else f"{type(exc).__name__}: {exc}", status) from exc
        return {"jsonData": out, "meta": self._meta(obj)}

    async def healthy(self, node: GraphNodeSpec) -> bool:
        if node.name in self.failing:
            return False
        try:
            with settings.node_environment(self.envs[node.name]):
                self.objects[node.name].health_status()
        except Exception:
            return False
        return True

    async def close(self) -> None:
        return None


class RestTransport:
    """Calls ``seldon-core-microservice`` nodes over REST with a keep-alive aiohttp session."""

    #: seconds an idle pooled connection to a node is kept; a node must keep it open longer (GUNICORN_KEEPALIVE),
    #: or a POST can go out on a connection the node is closing and fail (aiohttp re-sends none)
    KEEPALIVE_S = 30.0

    def __init__(self, urls: dict[str, str], pool: int = 64) -> None:
        self.urls = urls
        self.pool = pool
        self._session: Any = None

    def _sess(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.pool, limit_per_host=self.pool // 4 or 1, keepalive_timeout=self.KEEPALIVE_S
                ),
                json_serialize=json.dumps,
            )
        return self._session

    async def call(self, node: GraphNodeSpec, method: str, message: dict) -> dict:
        import aiohttp

        url = self.urls[node.name] + REST_PATHS[method]
        try:
            async with self._sess().post(
                url, data=json.dumps(message), headers={"Content-Type": "application/json"}
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise NodeCallError(node.name, _error_info(body), resp.status)
                doc = json.loads(body) if body else None
                if not isinstance(doc, dict):  # a 200 with no message: unavailable, never a 200 with a null answer
                    raise NodeCallError(node.name, f"answered 200 without a JSON message: {body[:200]!r}")
                return doc
        except aiohttp.ClientError as exc:
            raise NodeCallError(node.name, f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # a 200 that is not JSON (a node dying mid-answer): unavailable, not a 500
            raise NodeCallError(node.name, f"answered invalid JSON ({type(exc).__name__})") from exc

    async def healthy(self, node: GraphNodeSpec) -> bool:
        import aiohttp

        try:
            async with self._sess().get(
                self.urls[node.name] + "/health/status", timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                await resp.read()
                return resp.status == 200
        except Exception:
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error_info(body: bytes) -> str:
    try:
        doc = json.loads(body)
        return str((doc.get("status") or {}).get("info") or doc)
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")
