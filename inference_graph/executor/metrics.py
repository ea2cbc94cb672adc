"""The executor's own Prometheus metrics (nodes export theirs on their metrics ports)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "smartreco_executor_requests_total",
            "Requests by protocol, endpoint and code",
            ["protocol", "endpoint", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "smartreco_executor_request_seconds",
            "End-to-end latency",
            ["protocol", "endpoint"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.node_seconds = Histogram(
            "smartreco_executor_node_seconds",
            "Latency of one node call",
            ["node", "method"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.node_errors = Counter(
            "smartreco_executor_node_errors_total", "Failed node calls", ["node", "reason"], registry=r
        )
        self.degraded = Counter(
            "smartreco_executor_degraded_total", "Answers served without a node", ["node"], registry=r
        )
        self.feedback = Counter(
            "smartreco_executor_feedback_total", "Feedback messages walked through the graph", registry=r
        )
        self.logger_events = Counter(
            "smartreco_executor_logger_events_total",
            "Request-logger CloudEvents by type and outcome (sent|failed|dropped: queue full); best effort as Seldon's",
            ["type", "outcome"],
            registry=r,
        )
