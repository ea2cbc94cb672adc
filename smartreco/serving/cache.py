"""Short-lived response cache keyed by user, request shape, context and model version.

A user's feedback invalidates that user's entries at once, so a click is reflected in the next
answer. Local (in-process LRU with TTL) by default; Redis when several executors share one cache.

Bounded by bytes, not only by count: an answer's size depends on ``num_recommendations`` and its
explanations, so the local cache holds answers encoded (JSON bytes, decoded on a hit: a caller can
never change a cached answer) and at most ``max_bytes`` of them, skipping any one answer over
``max_entry_bytes``; what it holds in memory is then what it counts.

A cache is an optimisation: the Redis-backed one treats Redis being down as a miss (and a skipped
write / invalidation), never as an error, and stops calling Redis for ``retry_after_s`` after a
failure so a dead Redis adds no timeout to every request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ENTRY_BYTES = 256 * 1024


def _encode(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


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
    """Thread-safe LRU with a TTL, bounded by entries and by encoded bytes, with a per-user index
    for invalidation. ``clock`` (monotonic seconds) is injectable for simulated-time runs."""

    def __init__(
        self,
        ttl_s: float = 30.0,
        max_entries: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = int(max_bytes)
        self.max_entry_bytes = min(int(max_entry_bytes), self.max_bytes)
        self.bytes = 0  # encoded size of what is held now
        self._data: OrderedDict[str, tuple[float, str, bytes, int]] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str, key: str) -> dict | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] < self._clock():
                self._drop(key)
                return None
            self._data.move_to_end(key)
            data = hit[2]
        return json.loads(data)

    def put(self, user_id: str, key: str, value: dict) -> None:
        if self.ttl_s <= 0:
            return
        data = _encode(value)
        size = len(key) + len(data)
        with self._lock:
            if key in self._data:
                self._drop(key)
            if size > self.max_entry_bytes:
                return  # one huge answer must not evict everyone else's
            now = self._clock()
            self._data[key] = (now + self.ttl_s, user_id, data, size)
            self.bytes += size
            self._by_user.setdefault(user_id, set()).add(key)
            # the least recently used end: drop what is over the bounds, and what has expired there anyway
            while self._data and (
                len(self._data) > self.max_entries
                or self.bytes > self.max_bytes
                or self._data[next(iter(self._data))][0] < now
            ):
                self._drop(next(iter(self._data)))

    def _drop(self, key: str) -> None:
        _, user_id, _, size = self._data.pop(key)
        self.bytes -= size
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
    """Entries as Redis strings with a TTL (the TTL bounds Redis memory; one entry is at most
    ``max_entry_bytes``); a per-user set lists them for invalidation. Redis down = cache miss."""

    def __init__(
        self,
        url: str,
        ttl_s: float = 30.0,
        prefix: str = "smartreco:resp",
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        timeout_s: float = 0.2,
        retry_after_s: float = 1.0,
    ) -> None:
        import redis  # lazy: only this option needs it

        self._r = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._errors_types = (redis.RedisError, OSError, ValueError)
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.max_entry_bytes = int(max_entry_bytes)
        self.retry_after_s = retry_after_s
        self.errors = 0  # Redis calls that failed (each one served as a miss / skipped)
        self._down_until = 0.0

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self._down_until

    def _call(self, what: str, fn: Any, default: Any, *, skip_when_down: bool = True) -> Any:
        if skip_when_down and not self.healthy:
            return default  # Redis failed a moment ago: do not add a timeout to every request
        try:
            return fn()
        except self._errors_types as exc:
            self.errors += 1
            self._down_until = time.monotonic() + self.retry_after_s
            log.warning("response cache: Redis %s failed, serving without the cache: %s", what, exc)
            return default

    def get(self, user_id: str, key: str) -> dict | None:
        def read() -> dict | None:
            raw = self._r.get(f"{self.prefix}:{key}")
            hit = json.loads(raw) if raw else None
            return hit if isinstance(hit, dict) else None

        return self._call("get", read, None)

    def put(self, user_id: str, key: str, value: dict) -> None:
        data = _encode(value)
        if len(data) > self.max_entry_bytes:
            return
        ttl = max(1, int(self.ttl_s))

        def write() -> None:
            pipe = self._r.pipeline()
            pipe.set(f"{self.prefix}:{key}", data, ex=ttl)
            pipe.sadd(f"{self.prefix}:user:{user_id}", key)
            pipe.expire(f"{self.prefix}:user:{user_id}", ttl)
            pipe.execute()

        self._call("put", write, None)

    def invalidate_user(self, user_id: str) -> int:
        """Drop the user's entries; with Redis down nothing can be dropped, and nothing is served
        from it either (a miss) until it is back, when entries older than the TTL are gone."""

        def drop() -> int:
            keys = [k.decode() for k in self._r.smembers(f"{self.prefix}:user:{user_id}")]
            if keys:
                self._r.delete(*[f"{self.prefix}:{k}" for k in keys])
            self._r.delete(f"{self.prefix}:user:{user_id}")
            return len(keys)

        return self._call("invalidate", drop, 0, skip_when_down=False)  # always try: freshness


def open_cache(url: str | None, ttl_s: float) -> ResponseCache:
    """``redis://...`` → Redis; anything else (``local``, empty) → the in-process LRU."""
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisResponseCache(url, ttl_s)
    return LocalResponseCache(ttl_s)
