"""ABRouter (ROUTER): pick the child (arm) for each request and learn from feedback.

Modes: ``fixed`` (consistent per-user sha256 hashing, ``ratio_a`` to arm 0), ``epsilon_greedy`` and
``thompson`` (bandits over the rewards of past feedback). Arm statistics live in a shared store
(SQLite WAL file or Redis) because every Seldon worker has its own memory, and so they survive a
restart. ``route`` must return a plain int (Seldon rejects numpy ints).

Feedback (``send_feedback_raw``): the reward goes to the arm that really served the answer, as the graph
recorded it (the ranking node writes request id -> user, variant into the shared node state), never to
the arm a client names in ``response.meta.routing`` (a forged route cannot steer the bandit: SECURITY.md
O2); an answer served to another user, or never served, counts for no arm. Arm names are the arms'
``variant`` parameters. The reward is applied once per feedback id (``<id>:reward``), so a retry after a
failed later node does not count it twice.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from typing import Any

from inference_graph.base import GraphNode, as_payload, bad_request
from inference_graph.graph_io import feedback_reply, node_state
from smartreco import settings
from smartreco.experiments.assignment import assign_ratio
from smartreco.experiments.bandits import MODES, epsilon_greedy, open_store, thompson
from smartreco.serving.graph_feedback import attribute


class ABRouter(GraphNode):
    node_type = "ROUTER"

    def __init__(
        self,
        mode: str = "fixed",
        ratio_a: float = 0.5,
        arms: str = "champion,challenger",
        epsilon: float = 0.1,
        experiment: str = "smartreco-ab",
        store: str = "",
        stats_refresh_s: float = 1.0,
        **parameters: Any,
    ) -> None:
        super().__init__(
            mode=mode,
            ratio_a=ratio_a,
            arms=arms,
            epsilon=epsilon,
            experiment=experiment,
            store=store,
            **parameters,
        )
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.ratio_a = float(ratio_a)
        self.arms = [a.strip() for a in arms.split(",") if a.strip()]
        if len(self.arms) < 2:
            raise ValueError("arms: need at least two comma-separated arm names")
        self.epsilon = float(epsilon)
        self.experiment = experiment
        self.store_url = store
        self.stats_refresh_s = float(stats_refresh_s)
        self.store: Any = None
        self.state: Any = None  # the shared node state: which arm served which answer
        self._rng = random.Random()
        self._stats_at = 0.0
        # served counts go to the shared store at most every stats_refresh_s (a store write per request
        # was the router's largest cost); rewards are written at once, they drive the bandit
        self._served: Counter[str] = Counter()
        self._served_lock = threading.Lock()
        self._served_at = float("-inf")
        self.model_version = f"router-{mode}"

    def load(self) -> None:
        # SMARTRECO_STATE=redis://...: one set of arm statistics for every replica
        self.store = open_store(self.store_url or settings.STATE.get() or None, self.experiment)
        self.state = node_state()
        self.loaded = True

    def choose(self, user_id: str) -> int:
        if self.mode == "fixed":
            return assign_ratio(user_id, self.ratio_a, salt=self.experiment)
        try:
            stats = list(self.store.stats(self.arms).values())
        except Exception as exc:  # shared store down or slow: a degraded answer (hash split), never a failure
            self.add_tag("router_degraded", f"arm store unavailable ({type(exc).__name__})")
            return assign_ratio(user_id, self.ratio_a, salt=self.experiment)
        if self.mode == "epsilon_greedy":
            return epsilon_greedy(stats, self.epsilon, self._rng)
        return thompson(stats, self._rng)

    def route(self, X: Any, features_names: list[str] | None = None, **kwargs: Any) -> int:
        started = self._begin()
        self.ensure_loaded()
        payload = as_payload(X)
        request = payload.get("request", payload)
        user_id = request.get("user_id") if isinstance(request, dict) else None
        if user_id in (None, ""):
            raise bad_request("jsonData.request.user_id: field required")
        arm = int(self.choose(str(user_id)))
        self._count_served(self.arms[arm])
        self.add_tag("arm", self.arms[arm])
        self.add_tag("router_mode", self.mode)
        self.add_metric("COUNTER", "smartreco_arm_served_total", 1, arm=self.arms[arm])
        self._finish(started, "route")
        self._arm_gauges()
        return arm

    def _count_served(self, arm: str | None = None, force: bool = False) -> None:
        with self._served_lock:
            if arm is not None:
                self._served[arm] += 1
            now = time.monotonic()
            if not self._served or (not force and now - self._served_at < self.stats_refresh_s):
                return
            pending, self._served, self._served_at = self._served, Counter(), now
        for name, n in pending.items():
            try:
                self.store.record_served(name, n)
            except Exception:  # store down: keep the count for the next flush
                with self._served_lock:
                    self._served[name] += n

    def send_feedback_raw(self, request: Any) -> Any:
        """Reward the arm that served the answer (recorded, not claimed), once per feedback id."""
        started = self._begin()
        event = self._feedback_event(request)
        served = attribute(event, self.state)
        arm = served.variant if served is not None and served.variant in self.arms else None
        tags: dict[str, Any] = {"feedback_id": event.feedback_id, "routing_known": arm is not None}
        claimed = (event.client_routing or {}).get(self.name)
        if claimed is not None and (arm is None or claimed != self.arms.index(arm)):
            tags["routing_ignored"] = "meta.routing disagrees with the route the graph recorded"
            self.add_metric("COUNTER", "smartreco_feedback_routing_ignored_total", 1)

        def reward() -> None:
            if arm is None:  # nothing to attribute; the key still marks this feedback as handled
                self.add_metric("COUNTER", "smartreco_feedback_unattributed_total", 1)
                return
            self.store.record_reward(arm, event.reward)
            self.add_metric("COUNTER", "smartreco_arm_feedback_total", 1, arm=arm)
            self.add_metric("COUNTER", "smartreco_arm_reward_total", event.reward, arm=arm)

        applied = self.state.run_once(f"{event.feedback_id}:reward", reward)
        tags["duplicate"] = not applied
        if arm is not None:
            tags["arm"] = arm
        self._finish(started, "send_feedback")
        self._arm_gauges(force=True)
        # the bandit's counts after this feedback (with a shared store, the same from every replica); store
        # down: the reward above already failed or is done, and the reply needs no counts
        with contextlib.suppress(Exception):
            tags["arm_pulls"] = {a: s["pulls"] for a, s in self.arm_stats().items()}
        return feedback_reply(request, tags)

    def arm_stats(self) -> dict[str, dict]:
        self.ensure_loaded()
        self._count_served(force=True)
        return {
            arm: {
                "served": s.served,
                "pulls": s.pulls,
                "reward_sum": s.reward_sum,
                "mean_reward": s.mean_reward,
                "successes": s.successes,
                "failures": s.failures,
            }
            for arm, s in self.store.stats(self.arms).items()
        }

    def _arm_gauges(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._stats_at < self.stats_refresh_s:
            return
        self._stats_at = now
        try:
            stats = self.arm_stats()
        except Exception:  # shared store down: the gauges wait for the next refresh, the answer goes out
            return
        for arm, s in stats.items():
            self.add_metric("GAUGE", "smartreco_arm_pulls", s["pulls"], arm=arm)
            self.add_metric("GAUGE", "smartreco_arm_mean_reward", s["mean_reward"], arm=arm)
            self.add_metric("GAUGE", "smartreco_arm_served", s["served"], arm=arm)

    def health_status(self) -> dict:
        status = super().health_status()
        status["arms"] = self.arm_stats()
        return status

    def init_metadata(self) -> dict:
        meta = super().init_metadata()
        meta["custom"]["arms"] = ",".join(self.arms)
        return meta
