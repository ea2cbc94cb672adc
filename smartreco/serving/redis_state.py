"""The graph nodes' shared state in Redis (``SMARTRECO_STATE=redis://HOST:PORT/DB``): one state for every
replica, so a click handled by one replica changes the next answer from any replica.

Same methods as :class:`~smartreco.serving.graph_state.GraphState` (the SQLite default for one pod), so
the nodes and :mod:`smartreco.serving.graph_feedback` do not know which one they hold. The "connection"
an effect gets in :meth:`RedisGraphState.apply_once` is a Redis ``MULTI`` pipeline: the effect's
commands and its ledger key are committed together, under ``WATCH`` of the key, so two replicas racing
on one feedback apply it once.

Keys (prefix ``smartreco:graph``): ``fx:<effect key>`` (ledger, expires after ``retention_s``),
``hist:<user>`` (sorted set, newest highest), ``pop`` (sorted set of decayed counts in log time) and
``t0``, ``gen`` (hash user -> cache generation), ``served:<request id>`` and ``last:<user>`` (JSON,
expire after ``served_retention_s``).

Redis down or slow: reads on the answer path degrade (no history, no boost, no attribution: the answer
is still served, from the models alone) and are logged; writes of a feedback raise
:class:`StateUnavailable`, so the node fails that feedback and the client's retry (same id) completes it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from smartreco.errors import SmartRecoError
from smartreco.serving.graph_state import Served

log = logging.getLogger(__name__)

# rescale every decayed count by ARGV[1] and move t0 to ARGV[2], unless another process did it already
_REBASE_LUA = """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  redis.call('ZADD', KEYS[1], tonumber(all[i + 1]) / tonumber(ARGV[1]), all[i])
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


class StateUnavailable(SmartRecoError):
    """The shared state could not be written: nothing of this effect was applied (retry with the same id)."""

    retry_after_s = 1.0


class RedisGraphState:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "smartreco:graph",
        history_per_user: int = 20,
        half_life_s: float = 3600.0,
        max_items: int = 50_000,
        retention_s: float = 7 * 86400.0,
        served_retention_s: float = 86400.0,
        timeout_s: float = 0.5,
    ) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.history_per_user = int(history_per_user)
        self.half_life_s = float(half_life_s)
        self.max_items = int(max_items)
        self.retention_s = float(retention_s)
        self.served_retention_s = float(served_retention_s)
        self._redis = redis
        self._errors = (redis.RedisError, OSError)
        self._r = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._rebase = self._r.register_script(_REBASE_LUA)
        self._t0: float | None = None

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _degraded(self, what: str, exc: Exception, default: Any) -> Any:
        log.warning("shared state unavailable (%s): %s; answering without it", what, exc)
        return default

    # ------------------------------------------------------------------ effect ledger
    def apply_once(self, key: str, fn: Callable[[Any], Any]) -> bool:
        """``fn(pipe)`` queues the effect's commands; they and the ledger key commit in one MULTI/EXEC,
        watched on the key (a concurrent apply of the same key makes this one see it done)."""
        fx = self._k("fx", key)
        try:
            for _ in range(20):
                with self._r.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(fx)
                        if pipe.exists(fx):
                            return False
                        pipe.multi()
                        fn(pipe)
                        pipe.set(fx, 1, ex=max(1, int(self.retention_s)))
                        pipe.execute()
                        return True
                    except self._redis.WatchError:
                        continue
            raise StateUnavailable(f"shared state: effect {key} contended 20 times")
        except self._errors as exc:
            raise StateUnavailable(f"shared state unavailable: {type(exc).__name__}: {exc}") from exc

    def done(self, key: str) -> bool:
        try:
            return bool(self._r.exists(self._k("fx", key)))
        except self._errors as exc:
            raise StateUnavailable(f"shared state unavailable: {exc}") from exc

    def mark(self, key: str) -> None:
        try:
            self._r.set(self._k("fx", key), 1, ex=max(1, int(self.retention_s)))
        except self._errors as exc:
            raise StateUnavailable(f"shared state unavailable: {exc}") from exc

    def run_once(self, key: str, fn: Callable[[], Any]) -> bool:
        """An effect outside Redis's transaction (bandit store, online store push): at least once."""
        if self.done(key):
            return False
        fn()
        self.mark(key)
        return True

    # ------------------------------------------------------------------ recent history
    def add_history(self, pipe: Any, user_id: str, item_id: str) -> None:
        hist = self._k("hist", user_id)
        pipe.zadd(hist, {item_id: time.time()})
        pipe.zremrangebyrank(hist, 0, -(self.history_per_user + 1))

    def history(self, user_id: str) -> list[str]:
        try:
            rows = self._r.zrevrange(self._k("hist", user_id), 0, self.history_per_user - 1)
        except self._errors as exc:
            return self._degraded("history", exc, [])
        return [r.decode() for r in rows]

    # ------------------------------------------------------------------ live popularity
    def _growth(self, now: float) -> float:
        if self._t0 is None:
            self._r.set(self._k("t0"), repr(now), nx=True)
            self._t0 = float(self._r.get(self._k("t0")))
        return math.exp2((now - self._t0) / self.half_life_s)

    def add_popularity(self, pipe: Any, item_id: str, weight: float) -> None:
        """Decayed counts in "log time" (weight * 2**(t/half-life)), as the SQLite state keeps them."""
        if weight <= 0:
            return
        now = time.time()
        g = self._growth(now)
        if g > 1e12:  # rebase before floats overflow: one process rescales, the others reload t0
            self._rebase(keys=[self._k("pop"), self._k("t0")], args=[g, repr(now), self._r.get(self._k("t0"))])
            self._t0 = None
            g = self._growth(now)
        pipe.zincrby(self._k("pop"), weight * g, item_id)
        if random.random() < 0.01:
            pipe.zremrangebyrank(self._k("pop"), 0, -(self.max_items + 1))

    def top_popular(self, k: int = 50) -> dict[str, float]:
        try:
            g = self._growth(time.time())
            rows = self._r.zrevrange(self._k("pop"), 0, int(k) - 1, withscores=True)
        except self._errors as exc:
            return self._degraded("popularity", exc, {})
        return {item.decode(): round(score / g, 6) for item, score in rows}

    # ------------------------------------------------------------------ cache generation
    def bump_generation(self, pipe: Any, user_id: str) -> None:
        pipe.hincrby(self._k("gen"), user_id, 1)

    def generation(self, user_id: str) -> int:
        """-1 when Redis cannot say: the answer is then keyed apart from every generation it wrote."""
        try:
            value = self._r.hget(self._k("gen"), user_id)
        except self._errors as exc:
            return self._degraded("generation", exc, -1)
        return int(value) if value is not None else 0

    # ------------------------------------------------------------------ served answers
    def record_served(self, served: Served) -> None:
        doc = json.dumps([served.request_id, served.user_id, served.variant, served.model_version])
        ttl = max(1, int(self.served_retention_s))
        try:
            pipe = self._r.pipeline(transaction=False)
            pipe.set(self._k("served", served.request_id), doc, ex=ttl)
            pipe.set(self._k("last", served.user_id), doc, ex=ttl)
            pipe.execute()
        except self._errors as exc:
            self._degraded("record served", exc, None)  # feedback on this answer then rewards no arm

    def _served_at(self, key: str) -> Served | None:
        try:
            doc = self._r.get(key)
        except self._errors as exc:
            raise StateUnavailable(f"shared state unavailable: {exc}") from exc
        return Served(*json.loads(doc)) if doc else None

    def served(self, request_id: str) -> Served | None:
        return self._served_at(self._k("served", request_id))

    def last_served(self, user_id: str) -> Served | None:
        return self._served_at(self._k("last", user_id))

    def prune(self) -> None:
        """Nothing to do: ledger keys and served answers expire on their own."""

    def close(self) -> None:
        self._r.close()
