"""The tiny real hybrid bundle the rehearsal's Services test and the rollout benchmark put in ``/models``:
synthetic data fitted in seconds (PureSVD, hashed content), so a pod starts on a real bundle without the
MovieLens pipeline having run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def save_tiny_bundle(folder: Path) -> pd.DataFrame:
    """Fit the tiny hybrid (80 users, 150 items, seed 3) and save its serving bundle in ``folder``; returns
    the items it was fitted on (the test picks categories from them)."""
    from smartreco.data.synthetic import generate_in_memory
    from smartreco.evaluation.split import temporal_split
    from smartreco.models.base import TrainData
    from smartreco.models.hybrid import HybridConfig, HybridRanker

    data = generate_in_memory(n_users=80, n_items=150, n_interactions=4000, seed=3)
    train = TrainData.from_interactions(temporal_split(data.interactions).train, data.items)
    cfg = HybridConfig(n_factors=8, nbr_k=20, k_cf=30, k_cooc=30, k_cb=10, k_pop=10, n_estimators=40,
                       min_data_in_leaf=5, cb_dims=32, cf_backend="svd", content="hashed")  # fmt: skip
    HybridRanker(cfg, progress=False).fit(train).save_bundle(folder)
    return data.items
