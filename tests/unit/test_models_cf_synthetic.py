"""CF on a small synthetic shop (known latent tastes): well above MostPopular.

Regression guard for issue #4: with few positives per user (purchases/likes/high ratings are ~14% of
events) positives-only MF was no better than MostPopular; ``train_on="auto"`` must notice on the
validation split that all interactions (views/clicks, also drawn by latent affinity) carry the taste.
"""

from __future__ import annotations

import pytest

from smartreco.data.synthetic import generate_in_memory
from smartreco.evaluation.evaluator import Evaluator
from smartreco.models.baselines import MostPopular
from smartreco.models.cf import CFConfig, CFRecommender

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    data = generate_in_memory(n_users=1_000, n_items=800, n_interactions=40_000, seed=7)
    return Evaluator.from_data(data, progress=False)


@pytest.fixture(scope="module")
def cf(evaluator):
    # defaults except size/speed knobs: train_on stays "auto" (the default under test)
    config = CFConfig(dim=32, n_negatives=0, batch_size=256, lr=0.02, max_epochs=30, patience=3,
                      progress=False, num_threads=1, seed=3)
    assert config.train_on == "auto"
    model = CFRecommender(config)
    return model, evaluator.evaluate(model)


def test_cf_well_above_mostpopular(cf, evaluator):
    _, result = cf
    pop = evaluator.evaluate(MostPopular()).metrics["ndcg@10"]
    assert result.metrics["ndcg@10"] > 1.5 * pop


def test_auto_picks_the_better_interaction_set_on_validation(cf):
    model, result = cf
    assert set(model.val_scores) == {"positives", "all"}
    assert model.train_on == max(model.val_scores, key=model.val_scores.get)
    assert model.train_on == "all"  # this shop's positives alone are too sparse (the issue #4 cause)
    assert result.params["train_on_selected"] == "all"
