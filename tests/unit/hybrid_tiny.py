"""Tiny shared fixtures for the hybrid / bundle / tracking tests (one fit per test process)."""

from __future__ import annotations

import functools

from smartreco.data.synthetic import generate_in_memory
from smartreco.evaluation.split import temporal_split
from smartreco.models.base import TrainData
from smartreco.models.hybrid import HybridConfig, HybridRanker


def tiny_config(**overrides) -> HybridConfig:
    # PureSVD + hashed content keep these fits instant; the served defaults (Lightning CF, MiniLM content)
    # are exercised by test_components_train and test_hybrid_served_parts
    base = dict(n_factors=8, nbr_k=20, k_cf=30, k_cooc=30, k_cb=10, k_pop=10, n_estimators=40,
                min_data_in_leaf=5, cb_dims=32, cf_backend="svd", content="hashed")
    return HybridConfig(**{**base, **overrides})


@functools.lru_cache(maxsize=1)
def tiny_data():
    return generate_in_memory(n_users=80, n_items=150, n_interactions=4000, seed=3)


@functools.lru_cache(maxsize=1)
def fitted() -> tuple[TrainData, HybridRanker]:
    data = tiny_data()
    split = temporal_split(data.interactions)
    train = TrainData.from_interactions(split.train, data.items)
    return train, HybridRanker(tiny_config(), progress=False).fit(train)
