"""Hybrid ranker: train/serve feature parity, later-window labels, retrievers, explanations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hybrid_tiny import fitted, tiny_config

from smartreco.data import columns as C
from smartreco.models import hybrid_features as F
from smartreco.models.hybrid import EventIndex, HybridRanker, neighbour_table

pytestmark = [pytest.mark.unit]


def _user_request(model: HybridRanker, row: int) -> tuple[str, list[str], set[str]]:
    w = model.window
    history = [str(model.item_ids[i]) for i in w.histories.get(row, [])]
    seen = {str(model.item_ids[i]) for i in w.seen.get(row, [])}
    return str(model.user_ids[row]), history, seen


def test_training_and_serving_compute_identical_features():
    _, model = fitted()
    runtime = model.runtime()
    ctx = {"channel": "mobile", "device_type": "tablet", "hour": 20}
    checked = 0
    for row in range(0, len(model.user_ids), 7):
        user, history, seen = _user_request(model, row)
        offline = model.user_candidates(row, cutoff=model.data_end_s, context=ctx)
        online = runtime.features(user, history, ctx, exclude=seen)
        np.testing.assert_array_equal(offline.items, online.items)
        np.testing.assert_array_equal(offline.features, online.features)  # nan == nan here
        np.testing.assert_array_equal(offline.because, online.because)
        checked += 1
    assert checked >= 5


def test_ranker_learns_from_a_later_window_than_the_retrievers():
    train, model = fitted()
    assert model.fit_info["label_users"] > 0 and model.fit_info["positive_rows"] > 0
    # the final retrievers see all of train: every train user's last event is in the final window
    last = train.interactions.groupby(C.USER_ID)[C.TIMESTAMP].max().astype("int64") // 1_000_000_000
    rows = model.user_index.get_indexer(last.index)
    np.testing.assert_allclose(model.window.last_ts[rows], last.to_numpy(dtype=float))


def test_score_users_ranks_candidates_above_everything_else():
    train, model = fitted()
    scores = model.score_users(np.arange(5))
    assert scores.shape == (5, train.matrix.n_items)
    for r in range(5):
        cands = model.user_candidates(r).items
        others = np.setdiff1d(np.arange(train.matrix.n_items), cands)
        assert scores[r, cands].min() > scores[r, others].max()


def test_contributions_add_up_to_the_ranker_score():
    _, model = fitted()
    uc = model.user_candidates(3)
    raw = model.booster.predict(uc.features, pred_contrib=True)
    grouped = model.contributions(uc.features)
    assert set(grouped) == set(F.COMPONENTS)
    total = sum(grouped.values()) + raw[:, -1]
    np.testing.assert_allclose(total, model.booster.predict(uc.features), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["cosine", "ease"])
def test_neighbour_table_is_sparse_top_k_without_self(method):
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=np.float32))
    ids, sc = neighbour_table(x, k=2, method=method, ease_lambda=0.5)
    assert ids.shape == (4, 2) and sc.shape == (4, 2)
    for i in range(4):
        assert i not in ids[i]
    assert ids[0, 0] == 1  # item 0 co-occurs most with item 1
    assert (ids[3] == -1).all()  # item 3 co-occurs with nothing


def test_window_counts_match_a_brute_force_count():
    rng = np.random.default_rng(0)
    ts = pd.to_datetime(rng.integers(1_600_000_000, 1_700_000_000, 500), unit="s", utc=True)
    inter = pd.DataFrame({C.ITEM_ID: rng.choice(["a", "b", "c"], 500), C.TIMESTAMP: ts})
    index = pd.Index(["a", "b", "c", "d"])
    ev = EventIndex.build(inter, index)
    cutoff = 1_650_000_000
    got = ev.counts(4, cutoff, 30)
    sec = inter[C.TIMESTAMP].astype("int64") // 1_000_000_000
    for k, item in enumerate(index):
        mask = (inter[C.ITEM_ID] == item) & (sec < cutoff) & (sec >= cutoff - 30 * 86_400)
        assert got[k] == mask.sum()


def test_neighbour_scores_sum_and_blame_the_strongest_history_item():
    nbr_ids = np.array([[2, 3], [2, -1], [-1, -1], [-1, -1]], dtype=np.int32)
    nbr_sc = np.array([[0.5, 0.1], [0.9, 0.0], [0, 0], [0, 0]], dtype=np.float32)
    ids, total, best, src = F.neighbour_scores(np.array([0, 1]), nbr_ids, nbr_sc)
    assert ids.tolist() == [2, 3]
    np.testing.assert_allclose(total, [1.4, 0.1], rtol=1e-6)
    assert src.tolist() == [1, 0]  # item 2 is mostly "because of" history position 1


def test_unknown_cf_backend_is_a_clear_error():
    from smartreco.errors import DataError

    train, _ = fitted()
    with pytest.raises(DataError, match="cf_backend"):
        HybridRanker(tiny_config(cf_backend="nope"), progress=False).fit(train)
