"""A tiny stdlib HTTP client of the graph executor (used by the CLI; no seldon-core needed)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from smartreco import settings
from smartreco.errors import SmartRecoError


def default_url() -> str:
    """``$SMARTRECO_GRAPH_URL`` (read now), else the local executor's address."""
    return settings.GRAPH_URL.get()

#: Reward of each feedback type for the router (ARCHITECTURE §6: click 1, purchase/like higher, ignore 0).
REWARDS: dict[str, float] = {
    "view": 0.0,
    "ignore": 0.0,
    "click": 1.0,
    "rating": 1.0,
    "add_to_cart": 2.0,
    "share": 2.0,
    "like": 3.0,
    "purchase": 5.0,
}


class GraphClientError(SmartRecoError):
    """The executor refused the request (message from its status) or could not be reached."""


def _post(url: str, body: dict, timeout: float) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            info = json.loads(exc.read())["status"]["info"]
        except (ValueError, KeyError, TypeError):
            info = exc.reason
        raise GraphClientError(f"HTTP {exc.code}: {info}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise GraphClientError(
            f"graph not reachable at {url} ({exc}); start it with `smartreco serve`"
        ) from None


def recommend(
    user_id: str,
    n: int = 10,
    channel: str = "web",
    exclude: list[str] | None = None,
    explain: bool = True,
    url: str | None = None,
    timeout: float = 10.0,
) -> dict:
    body = {
        "jsonData": {
            "user_id": user_id,
            "num_recommendations": n,
            "context": {"channel": channel},
            "exclude_items": exclude or [],
            "include_explanation": explain,
        }
    }
    return _post((url or default_url()).rstrip("/") + "/api/v1.0/predictions", body, timeout)


def feedback(
    user_id: str,
    item_id: str,
    interaction_type: str,
    reward: float | None = None,
    response: dict | None = None,
    url: str | None = None,
    timeout: float = 10.0,
) -> dict:
    if reward is None:
        if interaction_type not in REWARDS:
            raise GraphClientError(f"type: unknown interaction type {interaction_type!r}")
        reward = REWARDS[interaction_type]
    body: dict[str, Any] = {
        "request": {"jsonData": {"user_id": user_id}},
        "reward": reward,
        # Seldon's Feedback.truth is a SeldonMessage: the shape a cluster's executor and node wrappers accept
        "truth": {"jsonData": {"item_id": item_id, "interaction_type": interaction_type}},
    }
    if response is not None:
        body["response"] = response
    return _post((url or default_url()).rstrip("/") + "/api/v1.0/feedback", body, timeout)
