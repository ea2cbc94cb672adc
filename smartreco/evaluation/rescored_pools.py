"""Fixed candidate pools re-scored by another ranker, as a :class:`Recommender` the evaluator can score.

The ablation (a ranker retrained without a retriever or a feature group) and the ranker-stage tuning (a
ranker retrained with other folds, labels or pool sizes) both keep one fitted hybrid's candidate pools and
change only the ranker and which candidate rows / feature columns it sees. Both score users the same way:
every catalogue item starts at ``base`` (below any ranked item) and the kept pool rows get the ranker's
scores. That scoring lives here once; each caller says only how it selects rows and columns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from smartreco.models.base import Recommender, TrainData

#: (pool features, pool sources) -> (the features the ranker sees, a boolean mask of the kept rows)
Selector = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class RescoredPools(Recommender):
    """``pools[user_row] = (item indices, features, sources)``, re-scored by ``booster`` through ``select``."""

    def __init__(self, name: str, pools: dict, booster, select: Selector, base: np.ndarray) -> None:
        self.name, self.pools, self.booster, self.select, self.base = name, pools, booster, select, base

    def fit(self, data: TrainData) -> RescoredPools:  # pragma: no cover - never called (fit=False)
        return self

    def params(self) -> dict:
        return {}

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        out = np.tile(self.base, (len(user_rows), 1))
        for i, r in enumerate(np.asarray(user_rows)):
            items, x, src = self.pools[int(r)]
            xs, keep = self.select(x, src)
            if keep.any():
                out[i, items[keep]] = self.booster.predict(xs[keep], num_threads=1)
        return out
