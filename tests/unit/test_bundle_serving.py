"""The bundle loads and ranks in the Python 3.12 serving venv (no torch, scipy-free code path)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.serving, pytest.mark.unit]


def _tiny_bundle(path):
    import lightgbm as lgb

    from smartreco.models import hybrid_features as F
    from smartreco.serving.bundle import save_bundle

    rng = np.random.default_rng(0)
    n, d, k = 40, 4, 5
    cats = np.array(["a", "b", "c", "d"])[np.arange(n) % 4]
    catalogue = pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "title": [f"Item {i}" for i in range(n)],
                              "category": cats})
    nbr = np.stack([(np.arange(n) + j + 1) % n for j in range(k)], axis=1).astype(np.int32)
    x = rng.normal(size=(400, len(F.FEATURE_NAMES)))
    y = (x[:, 0] + x[:, 2] > 1).astype(float)
    booster = lgb.train({"objective": "lambdarank", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5},
                        lgb.Dataset(x, y, group=[20] * 20), num_boost_round=5)
    vec = rng.normal(size=(n, 8)).astype(np.float32)
    arrays = {
        "cf_user_factors": rng.normal(size=(3, d)).astype(np.float32),
        "cf_item_factors": rng.normal(size=(n, d)).astype(np.float32),
        "cb_item_vectors": vec / np.linalg.norm(vec, axis=1, keepdims=True),
        "nbr_ids": nbr, "nbr_scores": np.full((n, k), 0.5, dtype=np.float32),
        "category_code": pd.factorize(cats)[0].astype(np.int32),
        "item_count": np.arange(n, dtype=np.float32), "item_mean_rating": np.full(n, 4.0, dtype=np.float32),
        "created_s": np.full(n, 1.6e9), "ctx_channel": np.full((n, 3), 1 / 3, dtype=np.float32),
        "ctx_device": np.ones((n, 1), dtype=np.float32), "ctx_hour": np.full((n, 4), 0.25, dtype=np.float32),
        "pop_short": np.arange(n, dtype=np.float32), "pop_long": np.arange(n, dtype=np.float32) * 2,
    }
    meta = {"candidates": {"k_cf": 10, "k_cooc": 10, "k_cb": 5, "k_pop": 5}, "data_end_s": 1.7e9, "fold_in": "sum",
            "channel_vocab": ["web", "mobile", "email"], "device_vocab": ["ios"]}
    return save_bundle(path, kind="hybrid", catalogue=catalogue, user_ids=np.array(["u1", "u2", "u3"]),
                       arrays=arrays, ranker_text=booster.model_to_string(), meta=meta)


def test_serving_venv_loads_a_bundle_and_ranks(tmp_path):
    from smartreco.serving.runtime import load_runtime

    bundle = load_runtime(str(_tiny_bundle(tmp_path / "b")))
    assert "torch" not in sys.modules and "mlflow" not in sys.modules
    cf = bundle.cf_candidates("u1", ["i1"], 10, {"i2"})
    cb = bundle.cb_candidates(["i1", "i5"], 10, {"i2"})
    ranked = bundle.rank("u1", ["i1", "i5"], cf, cb, {"channel": "web", "hour": 20}, 8, {"i2"})
    assert len(ranked) == 8 and {"i1", "i2", "i5"}.isdisjoint(r.item_id for r in ranked)
    assert max(sum(r.category == c for r in ranked) for c in "abcd") <= 4
    assert all(r.because_item in ("i1", "i5") for r in ranked if r.because_item)
    cold = bundle.rank(None, [], {}, {}, {}, 5, set())
    assert [r.item_id for r in cold][:1] == ["i39"]  # the most popular item leads a cold start
