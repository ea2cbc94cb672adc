"""Replay held-out interactions as users answering served recommendations, so an A/B test between two
real models produces realistic feedback logs (impressions + clicks) for the analysis and report.

Protocol: the ARCHITECTURE §5 temporal split; both models are fitted on train. Each simulated day,
``visits_per_day`` visits are drawn from the users with a hold-out; the router picks an arm (fixed
hash split, or Thompson sampling learning from the rewards), the arm's model serves its top-k
unseen items, and the user clicks a served item that is among their held-out positives with
probability ``click_prob / log2(rank + 1)`` (position bias), plus rare noise clicks; a clicked item
rated 5 (or purchased) in the hold-out also gets a ``like`` (conversion). Clicked items are not served again.
Everything goes through :class:`~smartreco.feedback.FeedbackLog`, exactly as the executor logs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData, positive_mask
from smartreco.errors import DataError
from smartreco.evaluation.split import temporal_split
from smartreco.experiments.bandits import MemoryArmStore, thompson
from smartreco.experiments.design import Experiment, Variant
from smartreco.feedback.log import FeedbackLog
from smartreco.feedback.records import FEEDBACK, IMPRESSION
from smartreco.models.base import InteractionMatrix, Recommender, TrainData

LIKE_RATING = 5.0


@dataclass
class SimulationConfig:
    days: int = 14
    visits_per_day: int = 400
    k: int = 10
    click_prob: float = 0.7  # at rank 1, for a held-out positive
    noise_click_prob: float = 0.003  # any served item
    routing: str = "fixed"  # "fixed" or "thompson"
    allocation: float = 0.5  # champion's share under fixed routing
    seed: int = 0
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    fsync: bool = True


def _top_lists(
    model: Recommender, rows: np.ndarray, seen: InteractionMatrix, depth: int, batch: int = 256
) -> np.ndarray:
    """(len(rows), depth) item indexes, best first, train-seen items masked."""
    out = np.empty((len(rows), depth), dtype=np.int64)
    for lo in range(0, len(rows), batch):
        r = rows[lo : lo + batch]
        scores = np.asarray(model.score_users(r), dtype=np.float32).copy()
        sub = seen.matrix[r]
        scores[np.repeat(np.arange(len(r)), np.diff(sub.indptr)), sub.indices] = -np.inf
        part = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[lo : lo + batch] = np.take_along_axis(part, order, axis=1)
    return out


def simulate_ab(
    data: CanonicalData,
    champion: Recommender,
    challenger: Recommender,
    out_dir: str | Path,
    config: SimulationConfig | None = None,
    experiment_name: str = "champion-vs-challenger",
) -> dict:
    """Fit both models on the train split, replay ``days`` of visits, write ``out_dir/feedback`` (the log)
    and ``out_dir/experiment.json``; returns counts per arm."""
    cfg = config or SimulationConfig()
    if cfg.routing not in ("fixed", "thompson"):
        raise DataError(f"routing: must be 'fixed' or 'thompson', got {cfg.routing!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = temporal_split(data.interactions)
    train = TrainData.from_interactions(split.train, data.items)
    arms = (
        [champion.name, challenger.name] if champion.name != challenger.name else ["champion", "challenger"]
    )
    models = {arms[0]: champion.fit(train), arms[1]: challenger.fit(train)}

    seen = InteractionMatrix.build(split.train, train.matrix.item_ids, train.matrix.user_ids)
    test = split.test[split.test[C.USER_ID].isin(pd.Index(train.matrix.user_ids))]
    if test.empty:
        raise DataError("simulation: no held-out interactions for users in train")
    users = np.asarray(sorted(test[C.USER_ID].unique()), dtype=object)
    rows = train.matrix.user_index().get_indexer(users)
    items = train.matrix.item_index()
    pos = test[positive_mask(test)]
    pos = pos.assign(u=pd.Index(users).get_indexer(pos[C.USER_ID]), i=items.get_indexer(pos[C.ITEM_ID]))
    pos = pos[pos["i"] >= 0]
    relevant = {(int(u), int(i)) for u, i in zip(pos["u"], pos["i"], strict=True)}
    strong = (pos[C.RATING].fillna(0) >= LIKE_RATING) | (pos[C.INTERACTION_TYPE] == "purchase")
    liked = {(int(u), int(i)) for u, i in zip(pos.loc[strong, "u"], pos.loc[strong, "i"], strict=True)}

    depth = min(cfg.k * 3, len(items))
    tops = {a: _top_lists(m, rows, seen, depth) for a, m in models.items()}
    experiment = Experiment(
        name=experiment_name,
        variants=[Variant(arms[0], cfg.allocation), Variant(arms[1], round(1 - cfg.allocation, 12))],
        routing="fixed" if cfg.routing == "fixed" else "bandit",
        duration_days=cfg.days,
        start=cfg.start.isoformat(),
        min_sample_size=None,
    )
    experiment.save(out / "experiment.json")

    rng = np.random.default_rng(cfg.seed)
    prng = random.Random(cfg.seed)
    store = MemoryArmStore()
    clicked_before: set[tuple[int, int]] = set()
    fixed_arm = experiment.assign_many(users) if cfg.routing == "fixed" else None
    counts = {a: {"impressions": 0, "clicks": 0, "likes": 0} for a in arms}
    with FeedbackLog(out / "feedback", fsync=cfg.fsync) as log:
        for day in tqdm(range(cfg.days), desc="simulated days", leave=False):
            visitors = rng.integers(0, len(users), size=cfg.visits_per_day)
            seconds = np.sort(rng.uniform(0, 86_400, size=cfg.visits_per_day))
            impressions, feedback = [], []
            for v, (u, sec) in enumerate(zip(visitors, seconds, strict=True)):
                if fixed_arm is not None:
                    arm = str(fixed_arm[u])
                else:
                    arm = arms[thompson(list(store.stats(arms).values()), prng)]
                store.record_served(arm)
                served = [int(i) for i in tops[arm][u] if (int(u), int(i)) not in clicked_before][: cfg.k]
                ts = cfg.start + timedelta(days=day, seconds=float(sec))
                rid = f"d{day}-v{v}"
                impressions.append(
                    {
                        "request_id": rid,
                        "user_id": users[u],
                        "variant": arm,
                        "items": [str(items[i]) for i in served],
                        "ts": ts,
                    }
                )
                ranks = np.arange(1, len(served) + 1)
                hit = np.array([(int(u), i) in relevant for i in served], dtype=bool)
                p = np.where(hit, cfg.click_prob / np.log2(ranks + 1), cfg.noise_click_prob)
                clicks = np.flatnonzero(rng.random(len(served)) < p)
                reward = 0.0
                for c in clicks:
                    item = served[c]
                    clicked_before.add((int(u), item))
                    base = {
                        "user_id": users[u],
                        "item_id": str(items[item]),
                        "request_id": rid,
                        "variant": arm,
                        "rank": int(c) + 1,
                        "ts": ts + timedelta(seconds=5),
                    }
                    feedback.append(
                        {
                            **base,
                            "feedback_id": f"{rid}-{item}-click",
                            "interaction_type": "click",
                            "reward": 1.0,
                        }
                    )
                    reward += 1.0
                    counts[arm]["clicks"] += 1
                    if (int(u), item) in liked:
                        feedback.append(
                            {
                                **base,
                                "feedback_id": f"{rid}-{item}-like",
                                "interaction_type": "like",
                                "reward": C.INTERACTION_WEIGHTS["like"],
                            }
                        )
                        counts[arm]["likes"] += 1
                store.record_reward(arm, min(reward, 1.0))
                counts[arm]["impressions"] += 1
            log.append_many(impressions, kind=IMPRESSION)  # group commit: one fsync per day and kind
            log.append_many(feedback, kind=FEEDBACK)
    return {
        "experiment": experiment.to_dict(),
        "arms": counts,
        "users": len(users),
        "relevant_pairs": len(relevant),
        "log_dir": str(out / "feedback"),
    }
