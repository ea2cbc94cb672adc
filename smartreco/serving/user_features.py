"""User features and recent history for the transformer, with a graceful fallback.

The reader is ``smartreco.features.online_client.get_user_features`` (a Feast-free reader of the
online store: SQLite locally, Redis option). ``SMARTRECO_FEATURE_READER=module:attr`` points at
another callable (tests). When the reader is missing or the store is unreachable the request goes
on without features and the node tags the answer, instead of failing it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from smartreco import settings

READER_ENV = settings.FEATURE_READER.name
DEFAULT_READER = settings.FEATURE_READER.default
HISTORY_KEYS = ("recent_items", "history", "recent_item_ids", "recent_history")

Reader = Callable[[str], dict]


def load_reader(store: str | None = None) -> Reader:
    """The configured reader; ``store`` (sqlite|redis) is passed on when the reader accepts it."""
    spec = settings.FEATURE_READER.get()
    module_name, _, attr = spec.partition(":")
    func = getattr(importlib.import_module(module_name), attr)
    if store:
        try:
            import inspect

            if "store" in inspect.signature(func).parameters:
                return lambda user_id: func(user_id, store=store)
        except (TypeError, ValueError):  # builtins without a signature
            pass
    return func


def split_history(features: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(scalar features, recent item ids newest first) from whatever the reader returned."""
    history: list[str] = []
    rest: dict[str, Any] = {}
    for key, value in (features or {}).items():
        if key in HISTORY_KEYS and not history:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            history = [str(v) for v in (value or [])]
        elif key not in HISTORY_KEYS and (value is None or isinstance(value, (str, int, float, bool))):
            rest[key] = value
    return rest, history
