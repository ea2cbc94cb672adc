"""State the graph nodes share across worker processes: recent history, live popularity, the per-user
cache generation, the answers served (request id -> user, arm) and the feedback effect ledger.

Why a SQLite file (WAL mode): Seldon runs every node with several worker processes (gunicorn REST
workers, the gRPC server), and on a cluster the node containers of one predictor pod share its ``/tmp``
emptyDir, so anything kept in a Python dict would split between workers and vanish on restart. SQLite in
WAL mode gives atomic read-modify-write from any process on one machine or pod; several replicas share
state only through Redis (``SMARTRECO_STATE=redis://...``: :mod:`smartreco.serving.redis_state`, the same
methods; :func:`open_state` picks it for a ``redis://`` URL).

The effect ledger makes every feedback effect idempotent on its own key (``<feedback id>:<effect>``):
Seldon's executor calls the nodes of a feedback one after another (children first), so a retry of a
feedback whose first attempt failed half way must complete what is missing and repeat nothing.
:meth:`GraphState.apply_once` runs an effect on this database and records its key in the same
transaction (exactly once); :meth:`GraphState.run_once` guards an effect elsewhere (bandit store, online
store push): it runs, then its key is recorded, so a crash between the two repeats it once (at least once).
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, ts REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS history (user_id TEXT NOT NULL, item_id TEXT NOT NULL, ts INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, item_id))",
    "CREATE TABLE IF NOT EXISTS popularity (item_id TEXT PRIMARY KEY, score REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS generation (user_id TEXT PRIMARY KEY, gen INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS served (request_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, variant TEXT,"
    " model_version TEXT, ts REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS served_by_user ON served (user_id, ts)",
)


@dataclass(frozen=True)
class Served:
    """One answer the graph gave: who got it and from which arm (the A/B join and route check)."""

    request_id: str
    user_id: str
    variant: str | None
    model_version: str | None


class GraphState:
    """One SQLite file; a connection per thread (Seldon's REST workers serve with threads)."""

    def __init__(
        self,
        path: str | Path,
        *,
        history_per_user: int = 20,
        half_life_s: float = 3600.0,
        max_items: int = 50_000,
        retention_s: float = 7 * 86400.0,
        served_retention_s: float = 86400.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.history_per_user = int(history_per_user)
        self.half_life_s = float(half_life_s)
        self.max_items = int(max_items)
        self.retention_s = float(retention_s)
        self.served_retention_s = float(served_retention_s)  # one row per answer: kept shorter
        self._local = threading.local()
        con = self._con()
        for stmt in _SCHEMA:
            con.execute(stmt)
        con.execute("INSERT OR IGNORE INTO settings VALUES ('t0', ?)", (time.time(),))

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None or self._local.pid != os.getpid():  # never reuse a connection across a fork
            con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")  # a process crash loses no commit; the event log is the truth
            self._local.con, self._local.pid = con, os.getpid()
        return con

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            out = fn(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return out

    # ------------------------------------------------------------------ effect ledger
    def apply_once(self, key: str, fn: Callable[[sqlite3.Connection], Any]) -> bool:
        """Run ``fn(con)`` and record ``key`` in one transaction; False (nothing run) when already done."""

        def body(con: sqlite3.Connection) -> bool:
            if con.execute("SELECT 1 FROM effects WHERE key = ?", (key,)).fetchone():
                return False
            fn(con)
            con.execute("INSERT INTO effects VALUES (?, ?)", (key, time.time()))
            return True

        applied = self._tx(body)
        if applied and random.random() < 0.001:
            self.prune()
        return applied

    def done(self, key: str) -> bool:
        return self._con().execute("SELECT 1 FROM effects WHERE key = ?", (key,)).fetchone() is not None

    def mark(self, key: str) -> None:
        self._con().execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (key, time.time()))

    def run_once(self, key: str, fn: Callable[[], Any]) -> bool:
        """An effect outside this database: run ``fn`` unless ``key`` is done, then record it (an exception
        from ``fn`` records nothing, so a retry runs it again). False when it was already done."""
        if self.done(key):
            return False
        fn()
        self.mark(key)
        return True

    # ------------------------------------------------------------------ recent history
    def add_history(self, con: sqlite3.Connection, user_id: str, item_id: str) -> None:
        """Newest first; a repeated item moves to the front; at most ``history_per_user`` kept."""
        con.execute(
            "INSERT INTO history VALUES (?, ?, ?) ON CONFLICT (user_id, item_id) DO UPDATE SET ts = excluded.ts",
            (user_id, item_id, time.time_ns()),
        )
        con.execute(
            "DELETE FROM history WHERE user_id = ? AND item_id NOT IN "
            "(SELECT item_id FROM history WHERE user_id = ? ORDER BY ts DESC LIMIT ?)",
            (user_id, user_id, self.history_per_user),
        )

    def history(self, user_id: str) -> list[str]:
        rows = self._con().execute(
            "SELECT item_id FROM history WHERE user_id = ? ORDER BY ts DESC LIMIT ?", (user_id, self.history_per_user)
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ live popularity
    def _growth(self, con: sqlite3.Connection, now: float) -> float:
        t0 = con.execute("SELECT value FROM settings WHERE key = 't0'").fetchone()[0]
        return math.exp2((now - t0) / self.half_life_s)

    def add_popularity(self, con: sqlite3.Connection, item_id: str, weight: float) -> None:
        """Exponentially decayed counts kept in "log time" (weight * 2**(t/half-life)): O(1) per update."""
        if weight <= 0:
            return
        now = time.time()
        g = self._growth(con, now)
        if g > 1e12:  # rebase before floats overflow (after ~40 half-lives)
            con.execute("UPDATE popularity SET score = score / ?", (g,))
            con.execute("UPDATE settings SET value = ? WHERE key = 't0'", (now,))
            g = 1.0
        con.execute(
            "INSERT INTO popularity VALUES (?, ?) ON CONFLICT (item_id) DO UPDATE SET score = score + excluded.score",
            (item_id, weight * g),
        )
        if random.random() < 0.01:
            n = con.execute("SELECT COUNT(*) FROM popularity").fetchone()[0]
            if n > self.max_items:  # drop the weakest tenth
                con.execute(
                    "DELETE FROM popularity WHERE item_id IN (SELECT item_id FROM popularity ORDER BY score LIMIT ?)",
                    (n - int(self.max_items * 0.9),),
                )

    def top_popular(self, k: int = 50) -> dict[str, float]:
        """The ``k`` hottest items with their decayed counts as of now."""
        con = self._con()
        g = self._growth(con, time.time())
        rows = con.execute("SELECT item_id, score FROM popularity ORDER BY score DESC LIMIT ?", (int(k),))
        return {item: round(score / g, 6) for item, score in rows}

    # ------------------------------------------------------------------ cache generation
    def bump_generation(self, con: sqlite3.Connection, user_id: str) -> None:
        """A new fact about the user: every cached answer keyed on the old generation is stale."""
        con.execute(
            "INSERT INTO generation VALUES (?, 1) ON CONFLICT (user_id) DO UPDATE SET gen = gen + 1", (user_id,)
        )

    def generation(self, user_id: str) -> int:
        row = self._con().execute("SELECT gen FROM generation WHERE user_id = ?", (user_id,)).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ served answers
    def record_served(self, served: Served) -> None:
        self._con().execute(
            "INSERT OR REPLACE INTO served VALUES (?, ?, ?, ?, ?)",
            (served.request_id, served.user_id, served.variant, served.model_version, time.time()),
        )
        if random.random() < 1e-4:  # amortised upkeep on the hot path: one answer in 10,000
            self.prune()

    def served(self, request_id: str) -> Served | None:
        row = self._con().execute(
            "SELECT request_id, user_id, variant, model_version FROM served WHERE request_id = ?", (request_id,)
        ).fetchone()
        return Served(*row) if row else None

    def last_served(self, user_id: str) -> Served | None:
        row = self._con().execute(
            "SELECT request_id, user_id, variant, model_version FROM served WHERE user_id = ? ORDER BY ts DESC LIMIT 1",
            (user_id,),
        ).fetchone()
        return Served(*row) if row else None

    # ------------------------------------------------------------------ upkeep
    def prune(self) -> None:
        """Forget served answers older than ``served_retention_s`` (feedback on them then rewards no arm)
        and effect keys older than ``retention_s`` (a feedback retried later than that is still
        deduplicated by the event log, but its live effects would apply again)."""
        now = time.time()
        con = self._con()
        con.execute("DELETE FROM served WHERE ts < ?", (now - self.served_retention_s,))
        con.execute("DELETE FROM effects WHERE ts < ?", (now - self.retention_s,))

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


_OPEN: dict[str, GraphState] = {}
_OPEN_LOCK = threading.Lock()


def open_state(path: str | Path) -> GraphState:
    """One GraphState per file and process (nodes of the in-process graph share it, as processes share the file).
    A ``redis://`` URL opens the state every replica shares (:mod:`smartreco.serving.redis_state`)."""
    text = str(path)
    shared = text.startswith(("redis://", "rediss://", "unix://"))
    key = text if shared else str(Path(path).resolve())
    with _OPEN_LOCK:
        state = _OPEN.get(key)
        if state is None:
            if shared:
                from smartreco.serving.redis_state import RedisGraphState

                state = _OPEN[key] = RedisGraphState(text)  # type: ignore[assignment]
            else:
                state = _OPEN[key] = GraphState(path)
        return state
