"""Metric functions against hand-computed examples, and the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.evaluation import metrics as M
from smartreco.evaluation.stats import paired_bootstrap

pytestmark = [pytest.mark.unit]

# user 0: hits at ranks 1 and 3 of 4, 3 targets; user 1: no hit, 2 targets; user 2: hit at rank 2, 10 targets
HITS = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
N_REL = np.array([3, 2, 10])


def test_ndcg_by_hand():
    d = [1 / math.log2(r + 1) for r in range(1, 5)]
    expected = [(d[0] + d[2]) / (d[0] + d[1] + d[2]), 0.0, d[1] / sum(d)]
    np.testing.assert_allclose(M.ndcg_at_k(HITS, N_REL), expected)


def test_recall_uses_min_k_targets():
    np.testing.assert_allclose(M.recall_at_k(HITS, N_REL), [2 / 3, 0.0, 1 / 4])


def test_precision_map_hitrate_by_hand():
    np.testing.assert_allclose(M.precision_at_k(HITS, N_REL), [0.5, 0.0, 0.25])
    np.testing.assert_allclose(M.map_at_k(HITS, N_REL), [(1 / 1 + 2 / 3) / 3, 0.0, (1 / 2) / 4])
    np.testing.assert_allclose(M.hit_rate_at_k(HITS, N_REL), [1.0, 0.0, 1.0])


def test_perfect_ranking_scores_one_and_no_targets_scores_zero():
    hits = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    for fn in (M.ndcg_at_k, M.recall_at_k, M.map_at_k):
        np.testing.assert_allclose(fn(hits, np.array([2, 5])), [1.0, 1.0])
    assert M.ndcg_at_k(np.zeros((1, 3), bool), np.array([0]))[0] == 0.0


def test_beyond_accuracy_by_hand():
    top = np.array([[0, 1], [0, 2]])
    assert M.catalogue_coverage(top, 6) == pytest.approx(3 / 6)
    cats = np.array([0, 0, 1])
    np.testing.assert_allclose(M.intra_list_entropy(top, cats), [0.0, 1.0])
    info = M.item_self_information(np.array([4, 2, 0]), n_users=4)
    np.testing.assert_allclose(info, [0.0, 1.0, 2.0])  # unseen item counts as seen once
    np.testing.assert_allclose(M.novelty(top, info), [0.5, 1.0])
    np.testing.assert_allclose(M.popular_share(top, np.array([True, False, False])), [0.5, 0.5])


def test_dataframe_layer_matches_array_layer():
    truth = pd.DataFrame({C.USER_ID: ["a", "a", "a", "b"], C.ITEM_ID: ["x", "y", "z", "x"]})
    pred = pd.DataFrame({
        C.USER_ID: ["a", "a", "a", "a", "b", "b"],
        C.ITEM_ID: ["x", "q", "y", "w", "w", "q"],
        C.PREDICTION: [0.9, 0.8, 0.7, 0.1, 0.5, 0.4],
    })
    out = M.ranking_metrics(truth, pred, k=3)
    hits = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    np.testing.assert_allclose(out[M.NDCG].to_numpy(), M.ndcg_at_k(hits, np.array([3, 1])))
    assert out.loc["a", M.RECALL] == pytest.approx(2 / 3)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="n_relevant"):
        M.ndcg_at_k(HITS, np.array([1, 2]))


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    b = rng.random(500)
    better = paired_bootstrap(b + 0.05 + rng.normal(0, 0.01, 500), b, samples=500)
    assert better.significant and better.ci_low < better.mean_diff < better.ci_high
    same = paired_bootstrap(b + rng.normal(0, 0.05, 500), b, samples=500)
    assert same.ci_low < 0 < same.ci_high and not same.significant
    assert paired_bootstrap(b, b + 0.1, samples=200).p_not_better == 1.0
