"""Seldon's request logger, as its executor (v1, ``executor/predictor`` + ``executor/logger``) runs it.

Where a graph node has ``logger: {mode: all|request|response, url}``, the executor posts CloudEvents
(HTTP binary mode) to ``url`` (default: ``REQUEST_LOGGER_DEFAULT_ENDPOINT``):

- when it calls the node's input step (MODEL predict, TRANSFORMER / TRANSFORM_INPUT transform-input),
  its aggregate (COMBINER) or its output step (OUTPUT_TRANSFORMER / TRANSFORM_OUTPUT): the message
  sent (``io.seldon.serving.inference.request``, modes all|request) and the node's answer
  (``io.seldon.serving.inference.response``, modes all|response). A ROUTER's ``route`` is never logged;
- on feedback, before its children are walked: the feedback (``io.seldon.serving.feedback``, modes
  all|response).

Headers: ``ce-id`` (a fresh uuid), ``ce-type``, ``ce-source`` (the executor), ``ce-specversion``,
``ce-time``, ``ce-requestid`` (the executor's puid), ``ce-modelid`` (the node name),
``ce-inferenceservicename`` (the deployment), ``ce-namespace``, ``ce-endpoint`` (the predictor),
``ce-protocol``; the body
is the SeldonMessage (``application/json``). Delivery is asynchronous and best effort, as Seldon's: a
bounded queue, one attempt per event, failures counted and dropped; the answer never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from inference_graph.executor.graph import GraphNodeSpec
from inference_graph.executor.metrics import ExecutorMetrics

log = logging.getLogger(__name__)

REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK = "io.seldon.serving.feedback"
#: which logger modes log which event type (Seldon: request events for all|request, the rest for all|response)
MODES = {REQUEST: ("all", "request"), RESPONSE: ("all", "response"), FEEDBACK: ("all", "response")}


class RequestLogger:
    def __init__(
        self,
        *,
        source: str,
        deployment: str,
        predictor: str,
        namespace: str = "default",
        url_override: str | None = None,
        default_url: str | None = None,
        metrics: ExecutorMetrics | None = None,
        queue_max: int = 10_000,
        timeout_s: float = 5.0,
        workers: int = 4,
    ) -> None:
        self.source = source
        self.deployment = deployment
        self.predictor = predictor
        self.namespace = namespace
        #: local runs replace every node's cluster URL with the local event service (as Seldon's
        #: REQUEST_LOGGER_DEFAULT_ENDPOINT fills the URL of a logger that has none)
        self.url_override = url_override
        self.default_url = default_url
        self.metrics = metrics or ExecutorMetrics()
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue | None = None
        self._queue_max = queue_max
        self.workers = int(workers)  # concurrent senders, as Seldon's logger runs a pool of workers
        self._tasks: list[asyncio.Task] = []
        self._session: Any = None

    def url_for(self, node: GraphNodeSpec) -> str | None:
        if not node.logger:
            return None
        return self.url_override or node.logger.get("url") or self.default_url

    def wants(self, node: GraphNodeSpec, event_type: str) -> bool:
        if not node.logger:
            return False
        return str(node.logger.get("mode") or "all") in MODES[event_type]

    def log(self, node: GraphNodeSpec, event_type: str, message: dict, puid: str) -> None:
        """Queue one event when the node's logger wants it; never blocks, never raises."""
        if not self.wants(node, event_type):
            return
        url = self.url_for(node)
        if not url:
            return
        if self._queue is None:
            import aiohttp

            self._queue = asyncio.Queue(self._queue_max)
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(), name=f"request-logger-{i}") for i in range(self.workers)]
        headers = {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": str(uuid.uuid4()),
            "ce-type": event_type,
            "ce-source": self.source,
            "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "ce-requestid": puid,
            "ce-modelid": node.name,
            "ce-inferenceservicename": self.deployment,
            "ce-namespace": self.namespace,
            "ce-endpoint": self.predictor,
            "ce-protocol": "seldon",
        }
        try:
            self._queue.put_nowait((url, headers, json.dumps(message).encode()))
        except asyncio.QueueFull:
            self.metrics.logger_events.labels(event_type, "dropped").inc()

    async def _run(self) -> None:
        while True:
            url, headers, body = await self._queue.get()
            try:
                async with self._session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    outcome = "sent" if resp.status < 300 else "failed"
                    if resp.status >= 300:
                        log.warning("request logger: %s answered %s for %s", url, resp.status, headers["ce-type"])
            except Exception as exc:  # best effort: counted and dropped, as Seldon's logger does
                outcome = "failed"
                log.warning("request logger: %s unreachable: %s", url, type(exc).__name__)
            self.metrics.logger_events.labels(headers["ce-type"], outcome).inc()
            self._queue.task_done()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until every queued event was attempted (shutdown, tests)."""
        if self._queue is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout_s)

    async def close(self) -> None:
        await self.drain()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
