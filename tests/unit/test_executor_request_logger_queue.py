"""The executor's request logger is best effort by Seldon's contract, but bounded: when its queue is full
an event is dropped at once (the answer never waits) and counted on the executor's /metrics."""

from __future__ import annotations

import asyncio

import pytest

from inference_graph.executor.graph import GraphNodeSpec
from inference_graph.executor.metrics import ExecutorMetrics
from inference_graph.executor.request_logger import RESPONSE, RequestLogger

pytestmark = [pytest.mark.unit]


def test_a_full_logger_queue_drops_and_counts_instead_of_growing():
    metrics = ExecutorMetrics()
    node = GraphNodeSpec(name="hybrid-a", type="MODEL", class_name="m.C", image="img",
                         logger={"mode": "response", "url": "http://127.0.0.1:9/"})

    async def main():
        logger = RequestLogger(source="http://127.0.0.1:1", deployment="d", predictor="p", metrics=metrics,
                               queue_max=3, timeout_s=0.5, workers=1)
        for i in range(10):  # no await in between: the sender has not taken any yet
            logger.log(node, RESPONSE, {"jsonData": {"i": i}}, f"puid-{i}")
        held = logger._queue.qsize()
        await logger.drain(timeout_s=30)  # the 3 queued ones are attempted (nothing listens on port 9)
        await logger.close()
        return held

    held = asyncio.run(main())
    value = metrics.registry.get_sample_value
    assert held == 3
    assert value("smartreco_executor_logger_events_total", {"type": RESPONSE, "outcome": "dropped"}) == 7
    assert value("smartreco_executor_logger_events_total", {"type": RESPONSE, "outcome": "failed"}) == 3
