"""Feast-free online feature reader/writer for the serving venv (no feast there): a tiny stdlib
HTTP client for Feast's feature server (``feast serve``: /get-online-features and /push).

Why HTTP rather than decoding Feast's SQLite/Redis values directly: the stored values are Feast
protobufs keyed by Feast's entity-key serialisation, which would tie the serving image to Feast's
internals; the feature server is Feast's supported remote API and costs ~3 ms a read (STACK_NOTES).
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime

USER_SERVICE = "serving_user_v1"
ITEM_SERVICE = "serving_item_v1"
PUSH_SOURCE = "interactions_push"
HISTORY_LENGTH = 20
DEFAULT_URL = os.environ.get("SMARTRECO_FEATURE_SERVER", "http://127.0.0.1:6566")


class FeatureServerError(RuntimeError):
    """The feature server could not be reached or answered with an error."""


class OnlineFeatureClient:
    """``get_user_features(user_id) -> dict``; ``get_item_features(ids) -> {id: dict}``; ``push_interaction``."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except OSError as exc:
            raise FeatureServerError(f"feature server {self.url}{path}: {exc}") from None
        return json.loads(raw) if raw.strip() else {}

    def _read(self, service: str, key: str, ids: list[str]) -> list[dict]:
        out = self._post("/get-online-features", {"feature_service": service, "entities": {key: [str(i) for i in ids]}})
        names = out["metadata"]["feature_names"]
        rows: list[dict] = [{} for _ in ids]
        for name, col in zip(names, out["results"], strict=True):
            for row, value, status in zip(rows, col["values"], col["statuses"], strict=True):
                row[name] = value if status == "PRESENT" or name == key else None
        return rows

    def get_user_features(self, user_id: str) -> dict:
        """Stats + ``recent_items`` (newest first); all None for an unknown user, never an error."""
        row = self._read(USER_SERVICE, "user_id", [user_id])[0]
        row["recent_items"] = list(row.get("recent_items") or [])
        row["known"] = row.get("interaction_count") is not None or bool(row["recent_items"])
        return row

    def get_item_features(self, item_ids: list[str]) -> dict[str, dict]:
        return {str(i): row for i, row in zip(item_ids, self._read(ITEM_SERVICE, "item_id", item_ids), strict=True)}

    def push_interaction(
        self, user_id: str, item_id: str, timestamp: datetime | None = None, to: str = "online"
    ) -> list[str]:
        """Prepend ``item_id`` to the user's online recent history via the push source; returns the new list.

        Over HTTP only ``online`` is reliable: the server cannot type a JSON timestamp for the offline
        parquet (500). Durable history comes from the feedback log, re-read by the next features run.
        """
        current = self.get_user_features(user_id)["recent_items"]
        items = [str(item_id), *[str(i) for i in current]][:HISTORY_LENGTH]
        ts = (timestamp or datetime.now(UTC)).astimezone(UTC)
        df = {
            "user_id": [str(user_id)],
            "event_timestamp": [ts.isoformat()],
            "recent_items": [items],
            "history_length": [len(items)],
            "history_last_ts": [int(ts.timestamp())],
        }
        self._post("/push", {"push_source_name": PUSH_SOURCE, "df": df, "to": to})
        return items


def get_user_features(user_id: str, url: str = DEFAULT_URL) -> dict:
    return OnlineFeatureClient(url).get_user_features(user_id)


def get_item_features(item_ids: list[str], url: str = DEFAULT_URL) -> dict[str, dict]:
    return OnlineFeatureClient(url).get_item_features(item_ids)
