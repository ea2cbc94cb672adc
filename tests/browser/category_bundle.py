"""The integration tests' FakeBundle with item vectors clustered by category (tests only).

Real content embeddings cluster by genre; the plain fake's vectors are random, so a click could not
move the next list toward the clicked item's category. Here each item's vector is its category's
centre plus a little noise: the CB profile and CF fold-in of a user who clicks Horror items drift
toward Horror, as they would on MovieLens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from graph_fake_bundle import CATEGORIES, FakeBundle


class CategoryBundle(FakeBundle):
    def __init__(self, n_items: int, n_users: int, version: str) -> None:
        super().__init__(n_items, n_users, version)
        rng = np.random.default_rng(1)
        centres = {c: v for c, v in zip(CATEGORIES, rng.normal(size=(len(CATEGORIES), 8)) * 3, strict=True)}
        self.item_vec = {i: centres[self.category[i]] + rng.normal(scale=0.3, size=8) for i in self.items}


def load(path: str | Path) -> CategoryBundle:
    cfg = json.loads((Path(path) / "fake_bundle.json").read_text())
    return CategoryBundle(cfg["n_items"], cfg["n_users"], cfg["version"])
