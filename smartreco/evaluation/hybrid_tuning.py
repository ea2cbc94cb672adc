"""Tuning the hybrid's ranker stage on a validation split cut from the training window (never on test).

Why this shape: a hybrid fit on 2 shared cores takes many minutes, almost all of it in the retrievers
(EASE tables, Lightning CF) of each temporal fold's window. The ranker-stage choices do not change those
windows: how many temporal folds the ranker learns from (folds are cut one after another, so the rows of
fold ``f`` are the same whatever the total), how many candidates each retriever contributes (each
retriever's rank is a feature, so a smaller ``k`` is the same pool with the ranks beyond ``k`` dropped), the
label grading and the LightGBM parameters. So the hybrid is fitted ONCE on the inner train with the most
folds and the largest pools tried, keeping its ranking rows and the validation users' pools, and every
trial only re-filters rows, retrains the ranker and re-ranks the same pools -- as the ablation does.

Every trial is one read of the VALIDATION targets; the test split is not loaded into the evaluator.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from smartreco.evaluation import metrics as M
from smartreco.evaluation.evaluator import Evaluator, ModelResult
from smartreco.evaluation.rescored_pools import RescoredPools
from smartreco.models import hybrid_features as F
from smartreco.models.hybrid import LOW_SCORE, HybridConfig, HybridRanker, train_ranker

#: each retriever's rank feature (1-based position in its list, ``k + 1`` when absent)
RANK_FEATURE: dict[str, str] = {
    "cf": "cf_rank",
    "cooccurrence": "cooc_rank",
    "itemknn": "knn_rank",
    "covisit": "covisit_rank",
    "transitions": "trans_rank",
    "cb": "cb_rank",
    "popularity": "pop_rank",
}
#: the CandidateConfig field of each retriever
K_FIELD: dict[str, str] = {
    "cf": "k_cf",
    "cooccurrence": "k_cooc",
    "itemknn": "k_knn",
    "covisit": "k_covisit",
    "transitions": "k_trans",
    "cb": "k_cb",
    "popularity": "k_pop",
}
#: ranker-stage HybridConfig fields a trial may set (everything else needs a refit of the windows)
RANKER_FIELDS = (
    "n_estimators",
    "learning_rate",
    "num_leaves",
    "min_data_in_leaf",
    "valid_fraction",
    "patience",
    "lgb_params",
    "graded_labels",
    "n_folds",
)


@dataclass(frozen=True)
class Trial:
    """One ranker-stage configuration: HybridConfig fields (``k_*`` no larger than the base fit's)."""

    name: str
    overrides: dict = field(default_factory=dict)

    def config(self, base: HybridConfig) -> HybridConfig:
        bad = set(self.overrides) - set(RANKER_FIELDS) - set(K_FIELD.values())
        if bad:
            raise ValueError(f"trial {self.name}: {sorted(bad)} need a refit of the retrievers, not a ranker trial")
        cfg = dataclasses.replace(base, **self.overrides)
        for k in K_FIELD.values():
            if getattr(cfg, k) > getattr(base, k):
                raise ValueError(f"trial {self.name}: {k}={getattr(cfg, k)} above the base fit's {getattr(base, k)}")
        if cfg.n_folds > base.n_folds:
            raise ValueError(f"trial {self.name}: n_folds={cfg.n_folds} above the base fit's {base.n_folds}")
        return cfg


def cap_pool(x: np.ndarray, sources: np.ndarray, cfg: HybridConfig) -> tuple[np.ndarray, np.ndarray]:
    """The pool a config with smaller ``k_*`` would have built: rows some retriever still lists, with the
    rank features of the retrievers that no longer list them set to ``k + 1`` (absent)."""
    x = x.copy()
    keep = np.zeros(len(x), dtype=bool)
    for j, src in enumerate(F.SOURCES):
        k = getattr(cfg, K_FIELD[src])
        col = F.FEATURE_NAMES.index(RANK_FEATURE[src])
        listed = sources[:, j] & (x[:, col] <= k)
        x[:, col] = np.where(listed, x[:, col], k + 1)
        keep |= listed
    return x, keep


def trial_rows(rows: dict, cfg: HybridConfig) -> tuple[np.ndarray, ...]:
    """(x, y, groups, users) of a trial: the first ``n_folds`` folds, capped pools, label grading; groups
    left with no positive or a single row are dropped (the fit drops them too)."""
    group_of_row = np.repeat(np.arange(len(rows["groups"])), rows["groups"])
    x, keep = cap_pool(rows["x"], rows["sources"], cfg)
    keep &= rows["fold"] < cfg.n_folds
    y = rows["y"] if cfg.graded_labels else (rows["y"] > 0).astype(np.float32)
    g = group_of_row[keep]
    size = np.bincount(g, minlength=len(rows["groups"]))
    pos = np.bincount(g, weights=(y[keep] > 0).astype(np.float64), minlength=len(rows["groups"]))
    good = (size >= 2) & (pos > 0)
    sel = np.flatnonzero(keep)[good[g]]
    groups = size[good]
    return x[sel], y[sel], groups, rows["users"][sel]


@dataclass
class TuningState:
    """What the trials need from the one base fit (picklable, so later trials need no refit)."""

    config: HybridConfig
    rows: dict
    pools: dict
    base: np.ndarray

    @classmethod
    def from_model(cls, evaluator: Evaluator, model: HybridRanker) -> TuningState:
        """The base fit's ranking rows and the pools of ``evaluator``'s users (the model was fitted with
        ``keep_ranking_rows`` on ``evaluator``'s train, with the most folds and largest pools tried)."""
        rows = getattr(model, "ranking_rows", None)
        if rows is None or "fold" not in rows:
            raise ValueError("hybrid tuning: fit the hybrid with keep_ranking_rows = True first")
        pools = {}
        for r in evaluator.eval_rows:
            uc = model.user_candidates(int(r))
            pools[int(r)] = (uc.items, uc.features, F.source_matrix(uc))
        base = (LOW_SCORE + np.log1p(model.pop_end[1])).astype(np.float32)
        return cls(config=model.config, rows=rows, pools=pools, base=base)


def run_trials(
    evaluator: Evaluator, state: TuningState, trials: Sequence[Trial], log: Callable[[str], None] = print
) -> list[dict]:
    """Every trial's validation metrics, each a ranker retrained on the base fit's rows."""
    rows, pools, base = state.rows, state.pools, state.base
    out = []
    for t in trials:
        t0 = time.monotonic()
        cfg = t.config(state.config)
        x, y, groups, users = trial_rows(rows, cfg)
        booster, info = train_ranker(x, y, groups, users, cfg)
        trial = RescoredPools(t.name, pools, booster, lambda x, src, cfg=cfg: cap_pool(x, src, cfg), base)
        res: ModelResult = evaluator.evaluate(trial, t.name, fit=False)
        entry = {
            "trial": t.name,
            "overrides": dict(t.overrides),
            M.metric_key(M.NDCG, evaluator.k): res.metrics[M.metric_key(M.NDCG, evaluator.k)],
            M.metric_key(M.RECALL, evaluator.k): res.metrics[M.metric_key(M.RECALL, evaluator.k)],
            "rounds": info["rounds"],
            "label_users": info["label_users"],
            "ranking_rows": info["ranking_rows"],
            "groups": int(len(groups)),
            "seconds": round(time.monotonic() - t0, 1),
            "result": res,
        }
        log(
            f"[tune] {t.name}: ndcg@10 {entry['ndcg@10']:.4f} recall@10 {entry['recall@10']:.4f} "
            f"rounds {entry['rounds']} rows {entry['ranking_rows']} ({entry['seconds']} s)"
        )
        out.append(entry)
    return out
