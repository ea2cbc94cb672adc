"""Online learning without a retrain: what one feedback changes before the user's next request.

The executor (the single process that owns the feedback log) keeps two small bounded structures:

- :class:`RecentHistory` — per-user recent items (newest first, LRU-bounded number of users). The
  next request carries them to the FeatureTransformer in ``jsonData.online.history``, which merges
  them in front of the online store's history, so CF fold-in and the CB profile move at once even
  when no Feast store is configured or its push is still in flight.
- :class:`PopularityCounters` — exponentially decayed item counters (bounded number of items),
  sent down the graph as ``jsonData.online.popularity_boost`` (top items only, small message).

Both travel inside the Seldon message, never through shared memory, because graph nodes may be
separate processes. Stdlib only: this runs in the serving venv.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from smartreco.data import columns as C
from smartreco.schema import RequestValidationError

#: key of the executor → FeatureTransformer block inside the request jsonData
ONLINE_KEY = "online"
#: feedback types that are not a canonical interaction: logged as a bare reward, no history change
NON_INTERACTIONS = frozenset({"ignore"})
#: types that do not enter the recent history (the item was only shown)
NOT_HISTORY = frozenset({"view"})


@dataclass(frozen=True)
class Interaction:
    """The user action a feedback message carries in its ``truth``."""

    user_id: str
    item_id: str
    interaction_type: str

    @property
    def weight(self) -> float:
        return C.INTERACTION_WEIGHTS.get(self.interaction_type, 0.0)


def _id(value: Any, where: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # gRPC Struct numbers arrive as floats
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise RequestValidationError(f"{where}: must be a non-empty string or integer id", where)
    if len(str(value)) > 128:
        raise RequestValidationError(f"{where}: longer than 128 characters", where)
    return str(value).strip()


def truth_of(message: dict) -> dict:
    """The feedback's truth as a plain dict (Seldon wraps it as a SeldonMessage ``{"jsonData": ...}``)."""
    truth = message.get("truth")
    if truth is None:
        return {}
    if not isinstance(truth, dict):
        raise RequestValidationError("truth: must be an object {item_id, interaction_type}", "truth")
    inner = truth.get("jsonData", truth)
    if not isinstance(inner, dict):
        raise RequestValidationError("truth.jsonData: must be an object {item_id, interaction_type}", "truth")
    return inner


def interaction_of(user_id: str | None, truth: dict) -> Interaction | None:
    """The interaction in ``truth`` (None for a bare reward); a 400 naming the bad field otherwise."""
    if not truth or truth.get(C.ITEM_ID) is None:
        return None
    item = _id(truth[C.ITEM_ID], "truth.item_id")
    itype = truth.get(C.INTERACTION_TYPE)
    if itype is None:
        raise RequestValidationError("truth.interaction_type: required with truth.item_id", "truth.interaction_type")
    allowed = (*C.INTERACTION_TYPES, *sorted(NON_INTERACTIONS))
    if itype not in allowed:
        raise RequestValidationError(
            f"truth.interaction_type: {itype!r} is not one of {', '.join(allowed)}", "truth.interaction_type"
        )
    if user_id is None:
        raise RequestValidationError("request.jsonData.user_id: required with truth.item_id", "request.jsonData")
    return Interaction(str(user_id), item, str(itype))


def feedback_id_of(message: dict, truth: dict, puid: str | None, interaction: Interaction | None) -> str:
    """The idempotency key: the client's id (top-level ``feedback_id`` or ``truth.feedback_id``, the
    only place a gRPC Feedback can carry it); else derived from the served response's puid and the
    action, so a blind retry of the same click on the same answer is still recognised; else a fresh id
    (returned to the client, which retries with it)."""
    given = message.get("feedback_id", truth.get("feedback_id"))
    if given is not None:
        return _id(given, "feedback_id")
    if puid and interaction is not None:
        return f"fb-{uuid.uuid5(uuid.NAMESPACE_URL, f'{puid}|{interaction.item_id}|{interaction.interaction_type}')}"
    return f"fb-{uuid.uuid4()}"


class RecentHistory:
    """Per-user deque of recent items, newest first, for at most ``max_users`` users (LRU)."""

    def __init__(self, max_users: int = 100_000, per_user: int = 20) -> None:
        self.max_users = int(max_users)
        self.per_user = int(per_user)
        self._users: OrderedDict[str, deque[str]] = OrderedDict()
        self._generation: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, user_id: str, item_id: str) -> None:
        with self._lock:
            items = self._users.get(user_id)
            if items is None:
                items = self._users[user_id] = deque(maxlen=self.per_user)
            elif item_id in items:
                items.remove(item_id)  # re-interaction moves it to the front
            items.appendleft(item_id)
            self._users.move_to_end(user_id)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)

    def get(self, user_id: str) -> list[str]:
        with self._lock:
            items = self._users.get(user_id)
            if items is None:
                return []
            self._users.move_to_end(user_id)
            return list(items)

    def bump(self, user_id: str) -> None:
        """A new fact about the user: answers computed before it must not be cached."""
        with self._lock:
            self._generation[user_id] = self._generation.get(user_id, 0) + 1
            self._generation.move_to_end(user_id)
            while len(self._generation) > self.max_users:
                self._generation.popitem(last=False)

    def generation(self, user_id: str) -> int:
        with self._lock:
            return self._generation.get(user_id, 0)

    def __len__(self) -> int:
        return len(self._users)


class PopularityCounters:
    """Exponentially decayed item counts (half-life ``half_life_s``), at most ``max_items`` items.

    Scores are kept in "log-time" units (weight * 2**(t/half_life)) so an update is O(1) and never
    touches the other items; they are rescaled to "now" only when read. When full, the weakest tenth
    is dropped (amortised O(1) per update).
    """

    def __init__(self, half_life_s: float = 3600.0, max_items: int = 50_000, clock: Any = time.monotonic) -> None:
        self.half_life_s = float(half_life_s)
        self.max_items = int(max_items)
        self._clock = clock
        self._t0 = clock()
        self._scores: dict[str, float] = {}
        self._lock = threading.Lock()

    def _growth(self, now: float) -> float:
        return math.exp2((now - self._t0) / self.half_life_s)

    def add(self, item_id: str, weight: float = 1.0) -> None:
        if weight <= 0:
            return
        with self._lock:
            now = self._clock()
            g = self._growth(now)
            if g > 1e12:  # rebase before floats overflow (after ~40 half-lives)
                self._scores = {k: v / g for k, v in self._scores.items()}
                self._t0, g = now, 1.0
            self._scores[item_id] = self._scores.get(item_id, 0.0) + weight * g
            if len(self._scores) > self.max_items:
                keep = sorted(self._scores.items(), key=lambda kv: -kv[1])[: int(self.max_items * 0.9)]
                self._scores = dict(keep)

    def top(self, k: int = 50) -> dict[str, float]:
        """The ``k`` hottest items with their decayed counts as of now."""
        with self._lock:
            g = self._growth(self._clock())
            best = sorted(self._scores.items(), key=lambda kv: -kv[1])[:k]
        return {item: round(score / g, 6) for item, score in best}

    def __len__(self) -> int:
        return len(self._scores)


class OnlineLearner:
    """What a feedback changes for the next request; :meth:`online_block` is what the request carries."""

    def __init__(
        self,
        *,
        max_users: int = 100_000,
        history_per_user: int = 20,
        popularity_half_life_s: float = 3600.0,
        max_items: int = 50_000,
        boost_items: int = 50,
    ) -> None:
        self.history = RecentHistory(max_users, history_per_user)
        self.popularity = PopularityCounters(popularity_half_life_s, max_items)
        self.boost_items = int(boost_items)

    def observe(self, interaction: Interaction) -> None:
        if interaction.interaction_type in NON_INTERACTIONS:
            return
        if interaction.interaction_type not in NOT_HISTORY:
            self.history.add(interaction.user_id, interaction.item_id)
        self.popularity.add(interaction.item_id, interaction.weight)
        self.history.bump(interaction.user_id)

    def online_block(self, user_id: str) -> dict[str, Any]:
        """``{"history": [...newest first], "popularity_boost": {item: decayed count}}`` (empty parts omitted)."""
        out: dict[str, Any] = {}
        recent = self.history.get(user_id)
        if recent:
            out["history"] = recent
        boost = self.popularity.top(self.boost_items) if len(self.popularity) else {}
        if boost:
            out["popularity_boost"] = boost
        return out


def merge_history(overlay: list[str], stored: list[str], limit: int) -> list[str]:
    """Overlay first (it is newer than anything the store has), then the store's, without repeats."""
    seen: set[str] = set()
    out: list[str] = []
    for item in (*overlay, *stored):
        item = str(item)
        if item not in seen:
            seen.add(item)
            out.append(item)
            if len(out) >= limit:
                break
    return out
