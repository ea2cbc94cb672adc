"""Drift numbers to a Prometheus Pushgateway, for the ``SmartRecoDriftDetected`` alert.

A drift check is a batch job (the CronJob ``smartreco-drift``, the drift pipeline's check step): it ends
before Prometheus could scrape it, so it pushes. Per view (``dataset`` label: interactions, items,
predictions, ...) it pushes ``smartreco_drift_share`` (the drifted-column share) and
``smartreco_drift_detected`` (1 when that view drifted), the names monitoring/prometheus/rules.yaml
alerts on. One grouping key (job ``smartreco-drift``) so each run replaces the previous run's numbers.
"""

from __future__ import annotations

from smartreco.errors import SmartRecoError
from smartreco.monitoring.drift import DriftResult

JOB = "smartreco-drift"


class PushError(SmartRecoError):
    """The Pushgateway did not take the numbers (unreachable, or it answered with an error)."""


def drift_registry(result: DriftResult):
    """The gauges of one drift result in a registry of their own (never the process's default one)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    share = Gauge("smartreco_drift_share", "Share of drifted columns in a view", ["dataset"], registry=registry)
    detected = Gauge("smartreco_drift_detected", "1 when the view drifted", ["dataset"], registry=registry)
    for view in result.views:
        share.labels(dataset=view.name).set(view.share)
        detected.labels(dataset=view.name).set(float(view.drifted))
    return registry


def push_drift(result: DriftResult, gateway: str, *, job: str = JOB, timeout_s: float = 10.0) -> None:
    """Replace ``job``'s group on ``gateway`` (``http(s)://host:port``) with this result's gauges."""
    from prometheus_client import push_to_gateway

    try:
        push_to_gateway(gateway, job=job, registry=drift_registry(result), timeout=timeout_s)
    except OSError as exc:  # URLError / HTTPError are OSErrors
        raise PushError(f"pushgateway {gateway}: {exc}") from exc
