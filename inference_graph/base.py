"""What every node shares: Seldon's optional methods (metrics, tags, health_status, init_metadata),
per-request custom metrics, and turning bad input into a Seldon 400.

Seldon calls the node method, then ``metrics()`` and ``tags()`` in the same thread, and a REST
worker may run several threads, so per-request metrics and tags live in thread-local storage.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from smartreco import __version__
from smartreco.schema import RequestValidationError

NODE_ID_ENV = "PREDICTIVE_UNIT_ID"


def bad_request(message: str) -> Exception:
    """Seldon's own exception with status 400 when the wrapper is present, else a validation error."""
    try:
        from seldon_core.flask_utils import SeldonMicroserviceException
    except ImportError:  # pragma: no cover - in-process use without seldon-core
        return RequestValidationError(message)
    return SeldonMicroserviceException(message, status_code=400, reason="MICROSERVICE_BAD_DATA")


class GraphNode:
    """Base of the node classes: keeps the parameters and reports per-request metrics and tags."""

    node_type = "MODEL"

    def __init__(self, **parameters: Any) -> None:
        self.parameters = parameters
        self.name = os.environ.get(NODE_ID_ENV, type(self).__name__)
        self.loaded = False
        self.model_version = "unloaded"
        self._local = threading.local()
        self._started = time.time()

    # --- lifecycle -------------------------------------------------------------------------------
    def load(self) -> None:
        """Called by the wrapper in each worker after fork; subclasses load their artifacts here."""
        self.loaded = True

    def ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()

    # --- per-request state -----------------------------------------------------------------------
    def _begin(self) -> float:
        self._local.metrics = []
        self._local.tags = {}
        return time.perf_counter()

    def _finish(self, started: float, method: str) -> None:
        self.add_metric("TIMER", "smartreco_node_ms", (time.perf_counter() - started) * 1000.0, method=method)
        self.add_metric("COUNTER", "smartreco_node_requests_total", 1, method=method)

    def add_metric(self, kind: str, key: str, value: float, **tags: str) -> None:
        metrics = getattr(self._local, "metrics", None)
        if metrics is None:
            metrics = self._local.metrics = []
        metrics.append({"type": kind, "key": key, "value": float(value), "tags": {"node": self.name, **tags}})

    def add_tag(self, key: str, value: Any) -> None:
        tags = getattr(self._local, "tags", None)
        if tags is None:
            tags = self._local.tags = {}
        tags[key] = value

    # --- Seldon optional methods -----------------------------------------------------------------
    def metrics(self) -> list[dict]:
        out = getattr(self._local, "metrics", None) or []
        self._local.metrics = []
        return out

    def tags(self) -> dict:
        out = getattr(self._local, "tags", None) or {}
        self._local.tags = {}
        return out

    def health_status(self) -> dict:
        self.ensure_loaded()
        return {"status": "ok", "node": self.name, "model_version": self.model_version}

    def init_metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [str(self.model_version)],
            "platform": "smartreco",
            "inputs": [{"messagetype": "jsonData"}],
            "outputs": [{"messagetype": "jsonData"}],
            "custom": {
                "node_type": self.node_type,
                "class": type(self).__name__,
                "smartreco_version": __version__,
                **{k: str(v) for k, v in self.parameters.items()},
            },
        }


def as_payload(features: Any) -> dict:
    """The jsonData dict a node receives; anything else is a 400 naming the message field."""
    if isinstance(features, dict):
        return features
    raise bad_request(f"jsonData: expected a JSON object, got {type(features).__name__}")
