"""Client of the event service, for the graph node that appends feedback (and for tools and tests).

Standard library only (``http.client``), one keep-alive connection per thread (Seldon's Python wrapper
serves a node with threads). A feedback append is idempotent on its id, so a request that failed on a
stale keep-alive connection is sent once more on a fresh one; anything else that is not a 200 raises:
:class:`EventServiceUnavailable` (5xx, timeout, no connection: retry later with the same id) or
:class:`FeedbackRejected` (400: the record itself is wrong, retrying cannot help).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from smartreco.errors import DataError, SmartRecoError
from smartreco.events.cloudevents import seldon_headers

FEEDBACK_PATH = "/api/v1/feedback"
EVENTS_PATH = "/api/v1/events"


class EventServiceUnavailable(SmartRecoError):
    """The event service did not durably store the record (5xx, timeout, unreachable): not acknowledged."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FeedbackRejected(DataError):
    """The event service refused the record as invalid (HTTP 400); ``field`` names what is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FeedbackAck:
    id: str
    duplicate: bool  # the id was already durable: nothing was written this time
    offset: int | None  # records in the log when it was acknowledged (informational)


class EventClient:
    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"event service url {url!r}: expected http(s)://host:port")
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._local = threading.local()

    # ---- transport -------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            fresh = conn.sock is None
            try:
                conn.request("POST", self.prefix + path, body=body, headers=dict(headers))
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except TimeoutError as exc:
                self._drop()
                raise EventServiceUnavailable(f"event service {self.url}: no answer in {self.timeout_s:g} s") from exc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop()  # a keep-alive connection the server had closed: once more on a new one
                if fresh or attempt == 2:
                    raise EventServiceUnavailable(f"event service {self.url}: {type(exc).__name__}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise EventServiceUnavailable(f"event service {self.url}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _json(data: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    def _check(self, status: int, headers: dict[str, str], data: bytes) -> dict[str, Any]:
        doc = self._json(data)
        if status == 200:
            return doc
        if status in (400, 413):
            raise FeedbackRejected(str(doc.get("error") or f"HTTP {status}"), doc.get("field"))
        retry = headers.get("retry-after")
        raise EventServiceUnavailable(
            f"event service {self.url}: HTTP {status}: {doc.get('error') or 'not stored'}",
            float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
        )

    # ---- API -------------------------------------------------------------------------------
    def append_feedback(self, record: Mapping[str, Any]) -> FeedbackAck:
        """Durable when this returns (the service answered 200 after its fsync). ``record``: ``id`` (or
        ``feedback_id``), ``user_id``, ``item_id`` + ``interaction_type`` and/or ``reward``,
        ``request_id``, ``variant`` (alias ``arm``), ... as ``smartreco.feedback.records`` defines."""
        body = json.dumps(dict(record), default=str).encode()
        status, headers, data = self._post(FEEDBACK_PATH, body, {"Content-Type": "application/json"})
        doc = self._check(status, headers, data)
        return FeedbackAck(id=str(doc.get("id")), duplicate=bool(doc.get("duplicate")), offset=doc.get("offset"))

    def log_event(
        self, event_type: str, message: Mapping[str, Any], *, request_id: str, model_id: str, **attrs: str
    ) -> dict[str, Any]:
        """Send one SeldonMessage as Seldon's request logger would (binary-mode CloudEvent)."""
        headers = seldon_headers(event_type, request_id=request_id, model_id=model_id, **attrs)
        status, resp_headers, data = self._post(EVENTS_PATH, json.dumps(dict(message), default=str).encode(), headers)
        return self._check(status, resp_headers, data)

    def close(self) -> None:
        self._drop()
