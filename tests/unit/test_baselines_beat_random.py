"""Every baseline must beat random on data with obvious structure; tuning picks from its grid."""

from __future__ import annotations

import numpy as np
import pytest

from smartreco.evaluation import metrics as M
from smartreco.evaluation.evaluator import Evaluator
from smartreco.evaluation.toy import toy_data
from smartreco.models.base import Recommender
from smartreco.models.baselines import ALS, EASE, ItemKNN, MostPopular
from smartreco.models.registry import PEERS, ModelUnavailableError, UnknownModelError, build_models, get_model, lazy

pytestmark = [pytest.mark.unit]
NDCG = M.metric_key(M.NDCG)


class Random(Recommender):
    name = "random"

    def fit(self, data):
        self.n = data.matrix.n_items
        return self

    def score_users(self, user_rows):
        return np.random.default_rng(0).random((len(user_rows), self.n))


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator.from_data(toy_data(n_users=200, n_items=200, n_clusters=5, per_user=20), progress=False)


@pytest.fixture(scope="module")
def random_ndcg(evaluator) -> float:
    return evaluator.evaluate(Random()).metrics[NDCG]


@pytest.mark.parametrize("model", [MostPopular(), ItemKNN(20, 0.0), EASE(10.0), ALS(16, 1.0, 1.0, seed=3)],
                         ids=lambda m: m.name)
def test_baseline_beats_random(evaluator, random_ndcg, model):
    ndcg = evaluator.evaluate(model).metrics[NDCG]
    assert ndcg > 1.5 * random_ndcg, f"{model.name}: {ndcg:.4f} vs random {random_ndcg:.4f}"


def test_ease_tunes_lambda_on_validation(evaluator):
    model = EASE(grid=(1.0, 30.0))
    evaluator.evaluate(model)
    params = model.params()
    assert params["lambda"] in (1.0, 30.0) and len(params["trials"]) == 2
    best = max(params["trials"], key=lambda t: t["ndcg@10"])
    assert best["lam"] == params["lambda"]


def test_als_is_deterministic(evaluator):
    a = ALS(8, 0.5, 1.0, iterations=5, seed=1).fit(evaluator.train_data).score_users(np.arange(5))
    b = ALS(8, 0.5, 1.0, iterations=5, seed=1).fit(evaluator.train_data).score_users(np.arange(5))
    np.testing.assert_array_equal(a, b)


def test_registry_builds_peers_and_reports_unavailable_models():
    assert set(PEERS) <= set(build_models(list(PEERS))[0])
    with pytest.raises(UnknownModelError, match="unknown model 'nope'"):
        get_model("nope")
    with pytest.raises(ModelUnavailableError, match="cannot import"):
        lazy("smartreco.models.does_not_exist:Model")()


def test_unimportable_model_is_skipped_with_a_warning(monkeypatch):
    from smartreco.models import registry

    monkeypatch.setitem(registry.MODEL_FACTORIES, "ghost", lazy("smartreco.models.ghost_model:Ghost"))
    warnings: list[str] = []
    models, skipped = build_models(["mostpop", "ghost"], warn=warnings.append)
    assert list(models) == ["mostpop"] and list(skipped) == ["ghost"]
    assert len(warnings) == 1 and "skipping model 'ghost'" in warnings[0]
