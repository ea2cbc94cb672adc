"""A tiny dataset with obvious structure, for tests and examples of the evaluation protocol.

Users belong to one of ``n_clusters`` taste groups; items to the same groups (their category). Each
user rates mostly items of their own group highly (popularity-skewed inside the group) and a few
other items low. Any collaborative model should beat random here, and popularity should too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData, canonicalize


def toy_data(n_users: int = 120, n_items: int = 80, n_clusters: int = 4, per_user: int = 15,
             off_taste: int = 3, seed: int = 0) -> CanonicalData:
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(n_items) % n_clusters
    user_cluster = np.arange(n_users) % n_clusters
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.7  # Zipf-ish, item 0 most popular
    rows = []
    t0 = pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000_000
    for u in range(n_users):  # small by construction: a loop is clearer than vectorising here
        own = np.flatnonzero(item_cluster == user_cluster[u])
        other = np.flatnonzero(item_cluster != user_cluster[u])
        n_own = min(per_user - off_taste, len(own))
        liked = rng.choice(own, size=n_own, replace=False, p=popularity[own] / popularity[own].sum())
        disliked = rng.choice(other, size=min(off_taste, len(other)), replace=False)
        items = np.concatenate([liked, disliked])
        ratings = np.concatenate([rng.choice([4.0, 4.5, 5.0], size=len(liked)), np.full(len(disliked), 2.0)])
        perm = rng.permutation(len(items))
        times = t0 + np.sort(rng.integers(0, 365 * 86_400, size=len(items)))
        rows.append(pd.DataFrame({
            C.USER_ID: f"u{u}", C.ITEM_ID: [f"i{i}" for i in items[perm]], C.INTERACTION_TYPE: "rating",
            C.TIMESTAMP: times, C.RATING: ratings[perm],
        }))
    interactions = pd.concat(rows, ignore_index=True)
    items = pd.DataFrame({
        C.ITEM_ID: [f"i{i}" for i in range(n_items)],
        C.TITLE: [f"item {i}" for i in range(n_items)],
        C.CATEGORY: [f"group{c}" for c in item_cluster],
    })
    return canonicalize(interactions, items, source="toy")
