"""CF (Lightning MF): learns structure MostPopular cannot, deterministic by seed, ONNX parity, fold-in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.evaluation.evaluator import Evaluator
from smartreco.evaluation.split import temporal_split
from smartreco.models import serving_math as S
from smartreco.models.base import Recommender, TrainData
from smartreco.models.cf import CFConfig, CFRecommender
from smartreco.models.onnx_export import OnnxCFScorer

pytestmark = [pytest.mark.unit]

N_USERS, N_ITEMS, N_GROUPS = 120, 180, 6


def clustered_data(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users and items in 6 taste groups; users rate 23 items, 20 from their own group (rating 5),
    3 from other groups (rating 2). Popularity carries no signal about the group."""
    rng = np.random.default_rng(seed)
    group_items = np.arange(N_ITEMS).reshape(N_GROUPS, -1)
    rows = []
    for u in range(N_USERS):
        g = u % N_GROUPS
        own = rng.choice(group_items[g], size=20, replace=False)
        other = rng.choice(np.setdiff1d(np.arange(N_ITEMS), group_items[g]), size=3, replace=False)
        for i, r in [(i, 5.0) for i in own] + [(i, 2.0) for i in other]:
            rows.append((str(u), str(i), r))
    df = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.RATING])
    df[C.INTERACTION_TYPE] = "rating"
    df[C.TIMESTAMP] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.permutation(len(df)), unit="min")
    items = pd.DataFrame({C.ITEM_ID: [str(i) for i in range(N_ITEMS)], C.TITLE: [f"item {i}" for i in range(N_ITEMS)],
                          C.CATEGORY: [f"g{i // (N_ITEMS // N_GROUPS)}" for i in range(N_ITEMS)]})
    return df, items


class MostPopular(Recommender):
    name = "mostpop"

    def fit(self, data: TrainData) -> MostPopular:
        self.pop = np.asarray(data.matrix.matrix.sum(axis=0)).ravel().astype(np.float32)
        return self

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        return np.tile(self.pop, (len(user_rows), 1))


def small_config(**kw) -> CFConfig:
    base = {"dim": 16, "max_epochs": 40, "patience": 8, "batch_size": 256, "lr": 0.03, "progress": False, "seed": 3,
            "num_threads": 1, "n_negatives": 0, "neg_alpha": 0.0, "reg": 1e-4, "train_on": "all"}
    return CFConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def data():
    return clustered_data()


@pytest.fixture(scope="module")
def evaluator(data):
    inter, items = data
    return Evaluator(temporal_split(inter), items, progress=False)


@pytest.fixture(scope="module")
def fitted(evaluator):
    model = CFRecommender(small_config())
    result = evaluator.evaluate(model)
    return model, result


def test_learns_structure_beyond_popularity(fitted, evaluator):
    _, cf = fitted
    pop = evaluator.evaluate(MostPopular())
    assert cf.metrics["ndcg@10"] > pop.metrics["ndcg@10"] + 0.2
    assert cf.metrics["ndcg@10"] > 0.5


@pytest.mark.parametrize("loss,neg,alpha", [("softmax", 32, 1.0), ("bpr", 4, 0.0)])
def test_sampled_losses_also_learn(evaluator, loss, neg, alpha):
    cfg = small_config(loss=loss, n_negatives=neg, neg_alpha=alpha, train_on="positives", max_epochs=25, refit=False)
    res = evaluator.evaluate(CFRecommender(cfg))
    assert res.metrics["ndcg@10"] > 0.4


def test_validation_early_stopping_recorded(fitted):
    model, _ = fitted
    assert model.best_epoch is not None and 1 <= model.best_epoch <= 40
    assert len(model.val_history) >= model.best_epoch
    assert max(model.val_history) == pytest.approx(model.val_history[model.best_epoch - 1])


def test_deterministic_by_seed(data):
    inter, items = data
    train = TrainData.from_interactions(inter, items)
    cfg = {"max_epochs": 3, "refit": False}
    a = CFRecommender(small_config(**cfg)).fit(train).factors()
    b = CFRecommender(small_config(**cfg)).fit(train).factors()
    c = CFRecommender(small_config(seed=4, **cfg)).fit(train).factors()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a[1], c[1])


def test_bad_config_is_a_clear_error():
    from smartreco.errors import DataError

    with pytest.raises(DataError, match="cf.loss"):
        CFRecommender(CFConfig(loss="hinge"))


def test_onnx_scorer_matches_module(fitted, tmp_path):
    model, _ = fitted
    out = model.export(tmp_path / "cf")
    art = S.CFArtifacts.load(out)
    assert list(art.item_ids) == list(model.item_ids) and list(art.user_ids) == list(model.user_ids)
    rows = np.arange(len(model.user_ids))
    ref = model.score_users(rows)
    got = OnnxCFScorer(out).scores(art.user_factors[rows])
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-5
    top_ref = np.argsort(-ref, axis=1, kind="stable")[:, :10]
    top_got = np.argsort(-got, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(top_ref, top_got)
    one = OnnxCFScorer(out).scores(art.user_factors[0])  # a single vector, batch of 1
    assert one.shape == (1, len(model.item_ids))


@pytest.mark.parametrize("method", ["ls", "mean"])
def test_fold_in_recommends_the_users_group(fitted, method):
    model, _ = fitted
    _, items_f, bias = model.factors()
    item_index = pd.Index(model.item_ids)
    per_group = N_ITEMS // N_GROUPS
    hits = []
    for g in range(N_GROUPS):
        history = [str(g * per_group + j) for j in range(5)]  # a new user who liked 5 items of group g
        scores = S.cf_scores_for_history(history, item_index, items_f, bias, method=method)
        rows = S.history_rows(history, item_index)
        idx, _ = S.topk_blocked(
            S.fold_in_user(items_f, rows, S.recency_weights(len(rows)), method=method)[None, :],
            items_f, 10, bias=bias, exclude=[rows], block_size=17,
        )
        expected = np.argsort(-np.where(np.isin(np.arange(N_ITEMS), rows), -np.inf, scores), kind="stable")[:10]
        assert set(idx[0]) == set(expected)
        hits.append(np.mean(idx[0] // per_group == g))
    assert np.mean(hits) > 0.8  # neighbours come from the user's taste group


def test_fold_in_approximates_learned_vectors(fitted, data):
    """Folding in a known user's own train history ranks like their learned vector does."""
    model, _ = fitted
    inter, _ = data
    users_f, items_f, bias = model.factors()
    item_index = pd.Index(model.item_ids)
    gram = items_f.T.astype(np.float64) @ items_f
    agree = []
    for uid in model.user_ids[:30]:
        hist = inter[(inter[C.USER_ID] == uid) & (inter[C.RATING] >= 4)].sort_values(C.TIMESTAMP)[C.ITEM_ID]
        scores = S.cf_scores_for_history(hist.tolist(), item_index, items_f, bias, gram=gram)
        learned = users_f[item_index.size and np.flatnonzero(model.user_ids == uid)[0]] @ items_f.T + bias
        seen = S.history_rows(hist.tolist(), item_index)
        scores[seen] = learned[seen] = -np.inf
        agree.append(len(set(np.argsort(-scores)[:10]) & set(np.argsort(-learned)[:10])) / 10)
    assert np.mean(agree) > 0.5
