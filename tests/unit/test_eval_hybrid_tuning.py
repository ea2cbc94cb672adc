"""Ranker-stage tuning on validation: a capped pool is the pool a smaller k builds, fold filtering keeps the
first folds, and trials score only the validation split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hybrid_tiny import tiny_config, tiny_data

from smartreco.evaluation.evaluator import Evaluator
from smartreco.evaluation.hybrid_tuning import Trial, TuningState, cap_pool, run_trials, trial_rows
from smartreco.evaluation.split import temporal_split, validation_split
from smartreco.models import hybrid_features as F
from smartreco.models.hybrid import HybridRanker

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def fitted():
    data = tiny_data()
    evaluator = Evaluator(validation_split(temporal_split(data.interactions).train), data.items, progress=False)
    model = HybridRanker(tiny_config(n_folds=2), progress=False)
    model.keep_ranking_rows = True
    model.fit(evaluator.train_data)
    return evaluator, model


def test_a_capped_pool_equals_the_pool_of_a_smaller_k(fitted):
    evaluator, model = fitted
    r = int(evaluator.eval_rows[0])
    big = model.user_candidates(r)
    small_cfg = dataclasses.replace(model.config, k_cf=5, k_cooc=7, k_cb=0, k_pop=3, k_knn=4, k_covisit=2, k_trans=2)
    x, keep = cap_pool(big.features, F.source_matrix(big), small_cfg)
    model.config, saved = small_cfg, model.config
    try:
        small = model.user_candidates(r)
    finally:
        model.config = saved
    assert np.array_equal(big.items[keep], small.items)
    assert np.allclose(x[keep], small.features, equal_nan=True)


def test_trial_rows_keep_the_first_folds_only(fitted):
    _, model = fitted
    rows = model.ranking_rows
    assert set(np.unique(rows["fold"])) == {0, 1}
    one = trial_rows(rows, dataclasses.replace(model.config, n_folds=1))
    two = trial_rows(rows, model.config)
    assert len(one[1]) == int((rows["fold"] == 0).sum()) and len(two[1]) == len(rows["y"])
    assert one[2].sum() == len(one[1])


def test_trials_read_the_validation_targets_only(fitted):
    evaluator, model = fitted
    state = TuningState.from_model(evaluator, model)
    out = run_trials(evaluator, state, [Trial("a", {"n_folds": 1}), Trial("b", {"k_cb": 0})], log=lambda m: None)
    assert [o["trial"] for o in out] == ["a", "b"] and evaluator.target_reads == ["a", "b"]
    with pytest.raises(ValueError, match="refit"):
        Trial("c", {"nbr_k": 10}).config(model.config)
    with pytest.raises(ValueError, match="above the base"):
        Trial("d", {"n_folds": 3}).config(model.config)
