"""Evaluator: train items are masked, an oracle scores 1, results and comparisons have the contract shape."""

from __future__ import annotations

import numpy as np
import pytest

from smartreco.evaluation import metrics as M
from smartreco.evaluation.evaluator import Evaluator, evaluate_models
from smartreco.evaluation.report import markdown_summary, render_html
from smartreco.evaluation.toy import toy_data
from smartreco.models.base import Recommender, TrainData

pytestmark = [pytest.mark.unit]


class SeenLover(Recommender):
    """Scores the user's own train items highest: only masking keeps them out of the lists."""

    name = "seen"

    def fit(self, data: TrainData) -> SeenLover:
        self.x = data.matrix.matrix
        return self

    def score_users(self, user_rows):
        return self.x[user_rows].toarray() * 100.0 + np.linspace(0, 1, self.x.shape[1])[None, :]


class Oracle(Recommender):
    """Knows the test targets (injected): must reach NDCG = Recall = 1."""

    name = "oracle"

    def __init__(self, evaluator: Evaluator) -> None:
        self.ev = evaluator

    def fit(self, data):
        return self

    def score_users(self, user_rows):
        pos = np.searchsorted(self.ev.eval_rows, user_rows)
        return self.ev.targets[pos].toarray()


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator.from_data(toy_data(n_users=60, n_items=40, seed=1), batch_size=16, progress=False)


def test_train_items_are_never_recommended(evaluator):
    top = evaluator.rank(SeenLover().fit(evaluator.train_data))
    seen = evaluator.seen[evaluator.eval_rows].toarray()
    assert not np.take_along_axis(seen, top, axis=1).any()
    assert all(len(set(row)) == len(row) for row in top.tolist())  # no duplicates in a list


def test_oracle_is_perfect_and_targets_exclude_train_items(evaluator):
    result = evaluator.evaluate(Oracle(evaluator))
    assert result.metrics[M.metric_key(M.NDCG)] == pytest.approx(1.0)
    assert result.metrics[M.metric_key(M.RECALL)] == pytest.approx(1.0)
    assert not evaluator.targets.multiply(evaluator.seen[evaluator.eval_rows]).nnz
    assert len(result.per_user) == len(evaluator.eval_rows) > 0


def test_result_json_shape_and_reports(evaluator):
    res = evaluate_models(evaluator, {"seen": SeenLover(), "oracle": Oracle(evaluator)}, peers=("seen",))
    data = res.to_json()
    assert set(data) == {"protocol", "models", "skipped", "comparisons"}
    assert {"ndcg@10", "recall@10", "precision@10", "map@10", "hitrate@10", "coverage", "diversity",
            "novelty", "fit_seconds", "ms_per_user"} <= set(data["models"]["oracle"])
    comp = data["comparisons"]["by_model"]["oracle"]["vs_best_peer"]
    assert comp["reference"] == "seen" and comp["ci_low"] > 0
    assert "| oracle |" in markdown_summary(data)
    page = render_html(res)
    assert page.count("data:image/png;base64,") == 3


def test_wrong_score_shape_is_a_clear_error(evaluator):
    class Bad(SeenLover):
        def score_users(self, user_rows):
            return np.zeros((len(user_rows), 3))

    with pytest.raises(ValueError, match="score_users returned shape"):
        evaluator.evaluate(Bad())
