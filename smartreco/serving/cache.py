"""Short-lived response cache keyed by user, request shape, context and model version.

A user's feedback invalidates that user's entries at once, so a click is reflected in the next
answer. Local (in-process LRU with TTL) by default; Redis when several executors share one cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol


def cache_key(user_id: str, request: dict[str, Any], model_version: str) -> str:
    """Stable key: the user plus a digest of everything else that shapes the answer."""
    shape = {k: v for k, v in sorted(request.items()) if k not in ("user_id", "request_id")}
    digest = hashlib.sha256(json.dumps([shape, model_version], sort_keys=True, default=str).encode())
    return f"{user_id}|{digest.hexdigest()[:24]}"


class ResponseCache(Protocol):
    def get(self, user_id: str, key: str) -> dict | None: ...
    def put(self, user_id: str, key: str, value: dict) -> None: ...
    def invalidate_user(self, user_id: str) -> int: ...


class LocalResponseCache:
    """Thread-safe LRU with a TTL and a per-user index for invalidation."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, str, dict]] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str, key: str) -> dict | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                self._drop(key)
                return None
            self._data.move_to_end(key)
            return hit[2]

    def put(self, user_id: str, key: str, value: dict) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._data[key] = (time.monotonic() + self.ttl_s, user_id, value)
            self._data.move_to_end(key)
            self._by_user.setdefault(user_id, set()).add(key)
            while len(self._data) > self.max_entries:
                self._drop(next(iter(self._data)))

    def _drop(self, key: str) -> None:
        _, user_id, _ = self._data.pop(key)
        keys = self._by_user.get(user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[user_id]

    def invalidate_user(self, user_id: str) -> int:
        with self._lock:
            keys = list(self._by_user.get(user_id, ()))
            for key in keys:
                self._drop(key)
            return len(keys)

    def __len__(self) -> int:
        return len(self._data)


class RedisResponseCache:
    """Entries as Redis strings with a TTL; a per-user set lists them for invalidation."""

    def __init__(self, url: str, ttl_s: float = 30.0, prefix: str = "smartreco:resp") -> None:
        import redis  # lazy: only this option needs it

        self._r = redis.Redis.from_url(url, socket_timeout=0.2)
        self.ttl_s = ttl_s
        self.prefix = prefix

    def get(self, user_id: str, key: str) -> dict | None:
        raw = self._r.get(f"{self.prefix}:{key}")
        return json.loads(raw) if raw else None

    def put(self, user_id: str, key: str, value: dict) -> None:
        ttl = max(1, int(self.ttl_s))
        pipe = self._r.pipeline()
        pipe.set(f"{self.prefix}:{key}", json.dumps(value), ex=ttl)
        pipe.sadd(f"{self.prefix}:user:{user_id}", key)
        pipe.expire(f"{self.prefix}:user:{user_id}", ttl)
        pipe.execute()

    def invalidate_user(self, user_id: str) -> int:
        keys = [k.decode() for k in self._r.smembers(f"{self.prefix}:user:{user_id}")]
        if keys:
            self._r.delete(*[f"{self.prefix}:{k}" for k in keys])
        self._r.delete(f"{self.prefix}:user:{user_id}")
        return len(keys)


def open_cache(url: str | None, ttl_s: float) -> ResponseCache:
    """``redis://...`` → Redis; anything else (``local``, empty) → the in-process LRU."""
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisResponseCache(url, ttl_s)
    return LocalResponseCache(ttl_s)
