"""Grid search on the validation split inside train (never on test).

A model with hyper-parameters left open calls :func:`tune` from its ``fit``: candidates are fitted on
the inner train, ranked by NDCG@10 on the validation users, and the winner is refitted on all of
train by the caller. Fit time reported by the evaluator therefore includes the tuning.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from smartreco.evaluation import metrics as M
from smartreco.evaluation.evaluator import Evaluator
from smartreco.evaluation.split import validation_split
from smartreco.models.base import Recommender, TrainData


@dataclass
class TuningResult:
    best: dict
    best_score: float
    trials: list[tuple[dict, float]] = field(default_factory=list)


def grid(**axes: Sequence) -> list[dict]:
    """Cartesian product of parameter axes: ``grid(a=[1, 2], b=[3])`` -> ``[{a:1,b:3}, {a:2,b:3}]``."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def validation_evaluator(data: TrainData, k: int = M.DEFAULT_K) -> Evaluator:
    """An evaluator over the validation split of ``data`` (same protocol, one level down)."""
    return Evaluator(validation_split(data.interactions), data.items, k=k, progress=False)


def tune(
    data: TrainData,
    make: Callable[..., Recommender],
    candidates: Sequence[Mapping],
    *,
    metric: str = M.NDCG,
    evaluator: Evaluator | None = None,
) -> TuningResult:
    """Fit ``make(**params)`` for each candidate on the inner train; pick the best validation ``metric``."""
    evaluator = evaluator or validation_evaluator(data)
    key = M.metric_key(metric, evaluator.k)
    trials: list[tuple[dict, float]] = []
    for params in candidates:
        result = evaluator.evaluate(make(**params), fit=True)
        trials.append((dict(params), result.metrics[key]))
    best, best_score = max(trials, key=lambda t: t[1])
    return TuningResult(best=best, best_score=best_score, trials=trials)
