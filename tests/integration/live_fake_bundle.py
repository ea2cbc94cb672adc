"""The graph tests' FakeBundle with what serving new items needs (tests only): item vectors clustered by
category (as real content embeddings cluster by genre, L2-normalised), an encoder for new rows (their
category's centre), and the live hooks :class:`smartreco.serving.live_ranking.LiveView` asks a bundle for
(``live_profile``, ``live_scores``) with the fake's own scoring rule (0.6 x content + 0.3 x popularity; a new
item has none).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from graph_fake_bundle import CATEGORIES, HISTORY, FakeBundle
from graph_fake_bundle import read_features as _fake_features

#: a user whose history is all Horror (items 4, 10, 16: the fake's category is (id - 1) % 6)
LIVE_HISTORY = {"horror-fan": ["4", "10", "16"]}


class LiveFakeBundle(FakeBundle):
    content_dim = 8

    def __init__(self, n_items: int, n_users: int, version: str) -> None:
        super().__init__(n_items, n_users, version)
        rng = np.random.default_rng(1)
        # L2-normalised, as the real content vectors are
        self.centres = {c: _unit(v) for c, v in zip(CATEGORIES, rng.normal(size=(len(CATEGORIES), 8)), strict=True)}
        self.item_vec = {i: _unit(self.centres[self.category[i]] + rng.normal(scale=0.1, size=8)) for i in self.items}

    def has_item(self, item_id: str) -> bool:
        return str(item_id) in self.category

    def encode_items(self, rows: pd.DataFrame) -> np.ndarray:
        return np.stack([self.centres.get(str(c), np.zeros(8)) for c in rows["category"]]).astype(np.float32)

    def live_profile(self, history: list[str]) -> np.ndarray | None:
        known = [self.item_vec[h] for h in history if h in self.item_vec]
        return np.mean(known, axis=0) if known else None

    def live_scores(self, history, items, cb, context):
        profile = self.live_profile(history)
        if profile is None:
            return []
        out = []
        for it in items:
            content = 0.6 * float(it.vector @ profile)
            because = max((h for h in history if h in self.item_vec), key=lambda h: float(self.item_vec[h] @ it.vector))
            out.append(
                (content, {"cf": 0.0, "cb": content, "cooccurrence": 0.0, "popularity": 0.0, "context": 0.0}, because)
            )
        return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def load(path: str | Path) -> LiveFakeBundle:
    cfg = json.loads((Path(path) / "fake_bundle.json").read_text())
    return LiveFakeBundle(cfg["n_items"], cfg["n_users"], cfg["version"])


def read_features(user_id: str) -> dict:
    if user_id in LIVE_HISTORY:
        return {"recent_items": LIVE_HISTORY[user_id], "n_interactions": len(LIVE_HISTORY[user_id])}
    return _fake_features(user_id) if user_id in HISTORY else {}
