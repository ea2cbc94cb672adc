"""Path attributions (smartreco/models/path_attributions.py): they add up to the score exactly, start from the
expected score TreeSHAP reports, equal TreeSHAP where a tree has one split, and credit only the features a
row's path split on."""

import lightgbm as lgb
import numpy as np
import pytest

from smartreco.models.path_attributions import LeafAttributions

pytestmark = pytest.mark.unit

GROUPS = ("signal", "other", "unused")
FEATURE_GROUPS = ("signal", "signal", "other", "unused")


def _model(num_leaves: int, seed: int = 0) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 4))
    x[rng.random(600) < 0.05, 2] = np.nan  # missing values take a split's default side
    x[:, 3] = 1.0  # constant: never split on
    y = 2.0 * x[:, 0] - x[:, 1] + 0.5 * np.nan_to_num(x[:, 2]) + rng.normal(scale=0.1, size=600)
    params = {
        "objective": "regression",
        "num_leaves": num_leaves,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "num_threads": 1,
        "seed": seed,
    }
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=30), x


def _grouped(contrib: np.ndarray) -> dict[str, np.ndarray]:
    return {g: contrib[:, [f for f, fg in enumerate(FEATURE_GROUPS) if fg == g]].sum(axis=1) for g in GROUPS}


def test_attributions_add_up_to_the_score_from_treeshaps_expected_score():
    booster, x = _model(num_leaves=15)
    table = LeafAttributions.from_booster(booster, FEATURE_GROUPS, GROUPS)
    got = table.grouped(booster.predict(x, pred_leaf=True))
    np.testing.assert_allclose(sum(got.values()) + table.expected, booster.predict(x), rtol=0, atol=1e-9)
    shap = booster.predict(x, pred_contrib=True)
    assert table.expected == pytest.approx(float(shap[0, -1]), abs=1e-9)
    assert not np.allclose(got["signal"], _grouped(shap)["signal"])  # deeper trees: not TreeSHAP's values


def test_one_split_per_tree_gives_treeshaps_values():
    booster, x = _model(num_leaves=2)
    table = LeafAttributions.from_booster(booster, FEATURE_GROUPS, GROUPS)
    got = table.grouped(booster.predict(x, pred_leaf=True))
    want = _grouped(booster.predict(x, pred_contrib=True))
    for g in GROUPS:
        np.testing.assert_allclose(got[g], want[g], rtol=0, atol=1e-9)


def test_a_feature_never_split_on_gets_nothing_and_the_strongest_gets_most():
    booster, x = _model(num_leaves=7)
    got = LeafAttributions.from_booster(booster, FEATURE_GROUPS, GROUPS).grouped(booster.predict(x, pred_leaf=True))
    assert np.all(got["unused"] == 0.0)
    assert np.abs(got["signal"]).mean() > 3 * np.abs(got["other"]).mean()


def test_a_single_row_and_a_single_leaf_tree():
    booster, x = _model(num_leaves=7)
    table = LeafAttributions.from_booster(booster, FEATURE_GROUPS, GROUPS)
    one = table.grouped(booster.predict(x[:1], pred_leaf=True))
    assert all(v.shape == (1,) for v in one.values())
    flat = lgb.train(
        {"objective": "regression", "verbose": -1, "min_data_in_leaf": 1000},
        lgb.Dataset(x, np.ones(len(x))),
        num_boost_round=2,
    )
    table = LeafAttributions.from_booster(flat, FEATURE_GROUPS, GROUPS)
    got = table.grouped(flat.predict(x[:3], pred_leaf=True))
    assert all(np.all(v == 0.0) for v in got.values())
    np.testing.assert_allclose(table.expected, flat.predict(x[:3]), atol=1e-9)
