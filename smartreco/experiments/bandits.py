"""Bandit policies (epsilon-greedy, Thompson sampling) over arm statistics kept in a shared store.

Each Seldon worker (gunicorn REST workers, the gRPC process) has its own memory, so counts held in a
Python object would split across workers and vanish on restart. The store is a SQLite file in WAL
mode locally (atomic ``UPDATE ... SET x = x + ?`` from any process) or a Redis hash.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MODES = ("fixed", "epsilon_greedy", "thompson")


@dataclass(frozen=True)
class ArmStats:
    """Counts of one arm: served requests, rewarded feedback events and their reward."""

    served: int = 0
    pulls: int = 0  # feedback events (reward 0 included: an ignored recommendation is a trial)
    reward_sum: float = 0.0
    successes: float = 0.0  # reward clipped to [0, 1], the Beta posterior's evidence
    failures: float = 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.pulls if self.pulls else 0.0


def success_share(reward: float) -> float:
    """Map a reward (click 1, purchase/like higher, ignore 0) to a Bernoulli success in [0, 1]."""
    return min(max(float(reward), 0.0), 1.0)


class ArmStore(Protocol):
    def record_served(self, arm: str, n: int = 1) -> None: ...
    def record_reward(self, arm: str, reward: float) -> None: ...
    def stats(self, arms: Sequence[str]) -> dict[str, ArmStats]: ...
    def reset(self) -> None: ...


class MemoryArmStore:
    """Process-local store: for tests and the in-process mode only (not shared across workers)."""

    def __init__(self) -> None:
        self._stats: dict[str, ArmStats] = {}
        self._lock = threading.Lock()

    def record_served(self, arm: str, n: int = 1) -> None:
        with self._lock:
            s = self._stats.get(arm, ArmStats())
            self._stats[arm] = ArmStats(s.served + n, s.pulls, s.reward_sum, s.successes, s.failures)

    def record_reward(self, arm: str, reward: float) -> None:
        share = success_share(reward)
        with self._lock:
            s = self._stats.get(arm, ArmStats())
            self._stats[arm] = ArmStats(
                s.served, s.pulls + 1, s.reward_sum + reward, s.successes + share, s.failures + 1 - share
            )

    def stats(self, arms: Sequence[str]) -> dict[str, ArmStats]:
        with self._lock:
            return {a: self._stats.get(a, ArmStats()) for a in arms}

    def reset(self) -> None:
        with self._lock:
            self._stats.clear()


class SQLiteArmStore:
    """One row per (experiment, arm) in a WAL-mode SQLite file shared by every worker process."""

    def __init__(self, path: str | Path, experiment: str = "default") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.experiment = experiment
        self._local = threading.local()
        con = self._con()
        con.execute(
            "CREATE TABLE IF NOT EXISTS arms (experiment TEXT, arm TEXT, served INTEGER DEFAULT 0,"
            " pulls INTEGER DEFAULT 0, reward_sum REAL DEFAULT 0, successes REAL DEFAULT 0,"
            " failures REAL DEFAULT 0, PRIMARY KEY (experiment, arm))"
        )

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def _upsert(self, arm: str, sets: str, values: tuple) -> None:
        con = self._con()
        con.execute("INSERT OR IGNORE INTO arms (experiment, arm) VALUES (?, ?)", (self.experiment, arm))
        con.execute(
            f"UPDATE arms SET {sets} WHERE experiment = ? AND arm = ?", (*values, self.experiment, arm)
        )

    def record_served(self, arm: str, n: int = 1) -> None:
        self._upsert(arm, "served = served + ?", (int(n),))

    def record_reward(self, arm: str, reward: float) -> None:
        share = success_share(reward)
        self._upsert(
            arm,
            "pulls = pulls + 1, reward_sum = reward_sum + ?, successes = successes + ?, failures = failures + ?",
            (float(reward), share, 1.0 - share),
        )

    def stats(self, arms: Sequence[str]) -> dict[str, ArmStats]:
        rows = (
            self._con()
            .execute(
                "SELECT arm, served, pulls, reward_sum, successes, failures FROM arms WHERE experiment = ?",
                (self.experiment,),
            )
            .fetchall()
        )
        found = {r[0]: ArmStats(int(r[1]), int(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows}
        return {a: found.get(a, ArmStats()) for a in arms}

    def reset(self) -> None:
        self._con().execute("DELETE FROM arms WHERE experiment = ?", (self.experiment,))


class RedisArmStore:
    """A Redis hash per arm (``HINCRBY``/``HINCRBYFLOAT`` are atomic across processes and hosts)."""

    def __init__(self, url: str, experiment: str = "default") -> None:
        import redis  # lazy: only this option needs it

        self._r = redis.Redis.from_url(url, socket_timeout=0.5)
        self.experiment = experiment

    def _key(self, arm: str) -> str:
        return f"smartreco:bandit:{self.experiment}:{arm}"

    def record_served(self, arm: str, n: int = 1) -> None:
        self._r.hincrby(self._key(arm), "served", int(n))

    def record_reward(self, arm: str, reward: float) -> None:
        share = success_share(reward)
        pipe = self._r.pipeline()
        pipe.hincrby(self._key(arm), "pulls", 1)
        pipe.hincrbyfloat(self._key(arm), "reward_sum", float(reward))
        pipe.hincrbyfloat(self._key(arm), "successes", share)
        pipe.hincrbyfloat(self._key(arm), "failures", 1.0 - share)
        pipe.execute()

    def stats(self, arms: Sequence[str]) -> dict[str, ArmStats]:
        out = {}
        for a in arms:
            h = {k.decode(): v.decode() for k, v in self._r.hgetall(self._key(a)).items()}
            out[a] = ArmStats(
                int(h.get("served", 0)),
                int(h.get("pulls", 0)),
                float(h.get("reward_sum", 0)),
                float(h.get("successes", 0)),
                float(h.get("failures", 0)),
            )
        return out

    def reset(self) -> None:
        for key in self._r.scan_iter(f"smartreco:bandit:{self.experiment}:*"):
            self._r.delete(key)


def open_store(url: str | None, experiment: str) -> ArmStore:
    """``redis://...`` → Redis, ``memory`` → process-local, anything else → a SQLite file path."""
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisArmStore(url, experiment)
    if url == "memory":
        return MemoryArmStore()
    if not url:
        from smartreco.paths import runs_dir

        url = str(runs_dir() / "bandits" / "arms.sqlite")
    return SQLiteArmStore(url.removeprefix("sqlite:///"), experiment)


def epsilon_greedy(stats: Sequence[ArmStats], epsilon: float, rng: random.Random) -> int:
    """Explore a random arm with probability epsilon, else the best mean reward (untried arms first)."""
    if rng.random() < epsilon:
        return rng.randrange(len(stats))
    untried = [i for i, s in enumerate(stats) if s.pulls == 0]
    if untried:
        return rng.choice(untried)
    best = max(s.mean_reward for s in stats)
    return rng.choice([i for i, s in enumerate(stats) if s.mean_reward == best])


def thompson(stats: Sequence[ArmStats], rng: random.Random, prior: tuple[float, float] = (1.0, 1.0)) -> int:
    """Sample each arm's Beta(prior + successes, prior + failures) and take the largest draw."""
    draws = [rng.betavariate(prior[0] + s.successes, prior[1] + s.failures) for s in stats]
    return max(range(len(draws)), key=draws.__getitem__)
