"""The hybrid's sequence / item-kNN retrievers: tables, graded labels, and train/serve parity of their features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybrid_tiny import fitted

from smartreco.data import columns as C
from smartreco.models import hybrid_features as F
from smartreco.models.hybrid import relevance_grades, transition_table

pytestmark = [pytest.mark.unit]


def test_transition_table_counts_next_items_with_gap_weights():
    ids, sc = transition_table({0: np.array([0, 1, 2]), 1: np.array([0, 1])}, n_items=4, k=3, window=2,
                               shrink=0.0)
    # from 0: 1 follows twice (gap 1, weight 1 each), 2 once at gap 2 (weight 0.5); out-weight 2.5
    assert ids[0, :2].tolist() == [1, 2]
    np.testing.assert_allclose(sc[0, :2], [2 / 2.5, 0.5 / 2.5], rtol=1e-6)
    assert ids[2].tolist() == [-1, -1, -1]  # nothing ever follows item 2
    assert ids[3].tolist() == [-1, -1, -1]


def test_relevance_grades_follow_the_rating():
    frame = pd.DataFrame({C.RATING: [4.0, 4.5, 5.0, np.nan]})
    assert relevance_grades(frame).tolist() == [1.0, 2.0, 3.0, 1.0]


def test_new_retrievers_serve_the_same_pool_and_features_as_offline():
    _, model = fitted()
    runtime = model.runtime()
    cols = [F.FEATURE_NAMES.index(n) for n in ("knn_score", "trans_score", "covisit_score", "cb_last_sim")]
    nonzero = np.zeros(len(cols), dtype=bool)
    for row in range(0, len(model.user_ids), 11):
        w = model.window
        history = [str(model.item_ids[i]) for i in w.histories.get(row, [])]
        seen = {str(model.item_ids[i]) for i in w.seen.get(row, [])}
        offline = model.user_candidates(row, cutoff=model.data_end_s, context={})
        online = runtime.features(str(model.user_ids[row]), history, {}, exclude=seen)
        np.testing.assert_array_equal(offline.features, online.features)
        for name in F.SOURCES:
            np.testing.assert_array_equal(offline.sources[name], online.sources[name])
        nonzero |= (np.nan_to_num(offline.features[:, cols]) != 0).any(axis=0)
    assert nonzero.all()  # the parity above covers features that actually carry values
    assert model.fit_info["folds"] >= 1
