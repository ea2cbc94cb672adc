"""Node metrics are batched before they reach seldon-core's SeldonMetrics (whose every update is a
Manager round trip): counters summed, gauges last-value, timers all kept, flushed at most every interval."""

import pytest

from inference_graph.base import GraphNode, MetricBatch

pytestmark = [pytest.mark.unit]


def test_counters_sum_gauges_keep_last_and_timers_are_all_kept():
    b = MetricBatch(flush_s=3600)
    b.flush()  # the first flush goes out at once (a fresh node reports immediately)
    for ms in (1.0, 2.0, 3.0):
        b.add({"type": "COUNTER", "key": "n", "value": 1.0, "tags": {"node": "x"}})
        b.add({"type": "TIMER", "key": "t", "value": ms, "tags": {"node": "x"}})
    b.add({"type": "COUNTER", "key": "n", "value": 1.0, "tags": {"node": "x", "arm": "b"}})
    b.add({"type": "GAUGE", "key": "g", "value": 5.0, "tags": {}})
    b.add({"type": "GAUGE", "key": "g", "value": 7.0, "tags": {}})
    assert b.flush() == []  # inside the interval: nothing yet
    out = b.flush(force=True)
    counters = {tuple(sorted(m["tags"].items())): m["value"] for m in out if m["type"] == "COUNTER"}
    assert counters == {(("node", "x"),): 3.0, (("arm", "b"), ("node", "x")): 1.0}
    assert sorted(m["value"] for m in out if m["type"] == "TIMER") == [1.0, 2.0, 3.0]
    assert [m["value"] for m in out if m["type"] == "GAUGE"] == [7.0]
    assert b.flush(force=True) == []  # drained


def test_interval_zero_reports_every_call_like_plain_seldon(monkeypatch):
    monkeypatch.setenv("SMARTRECO_METRICS_FLUSH_S", "0")
    node = GraphNode()
    for _ in range(3):
        started = node._begin()
        node._finish(started, "predict")
        keys = sorted(m["key"] for m in node.metrics())
        assert keys == ["smartreco_node_ms", "smartreco_node_requests_total"]


def test_default_interval_batches_between_flushes(monkeypatch):
    monkeypatch.delenv("SMARTRECO_METRICS_FLUSH_S", raising=False)
    node = GraphNode()
    node._finish(node._begin(), "predict")
    assert node.metrics()  # first call flushes
    for _ in range(5):
        node._finish(node._begin(), "predict")
        assert node.metrics() == []  # within the second: held back
    pending = node._metrics.flush(force=True)
    total = next(m for m in pending if m["key"] == "smartreco_node_requests_total")
    assert total["value"] == 5.0 and sum(m["key"] == "smartreco_node_ms" for m in pending) == 5
