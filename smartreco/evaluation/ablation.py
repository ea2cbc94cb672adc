"""Ablation of the hybrid: the full model against itself without one retriever or one feature group.

Why from cached ranking rows: refitting every retriever per variant would multiply the hybrid's fit
time by the number of variants. The retrievers are the same in every variant; only the ranker's input
changes. So the full model keeps its training rows (features + which retrievers produced each row,
:attr:`HybridRanker.ranking_rows`), each variant drops the rows only the removed retriever produced and
that retriever's feature columns (or a feature group's columns), retrains the ranker with the full
model's number of boosting rounds, and re-ranks the same test candidate pools with the same rule.
Each variant is one read of the split's targets (counted by the evaluator) and is compared with the
full hybrid by a paired bootstrap on the same users.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from smartreco import settings
from smartreco.evaluation import metrics as M
from smartreco.evaluation.evaluator import Evaluator, ModelResult, compare
from smartreco.evaluation.rescored_pools import RescoredPools
from smartreco.models import hybrid_features as F
from smartreco.models.hybrid import LOW_SCORE, HybridRanker, train_ranker

#: the metrics every variant is compared on
ABLATION_METRICS: tuple[str, ...] = (M.NDCG, M.RECALL)
#: wall-clock budget (s) for the variants; each variant retrains a ranker (minutes on a busy 2-core box),
#: so the variants that do not start within it are listed as not run instead of holding the run hostage
DEFAULT_BUDGET_S = settings.ABLATION_BUDGET_S.default


@dataclass(frozen=True)
class Variant:
    """One ablated configuration: retrievers whose candidates go, feature columns that go."""

    name: str
    drop_sources: tuple[str, ...]
    drop_features: tuple[str, ...]


def variants() -> list[Variant]:
    """Without each retriever (its candidates and its score/rank features), then each feature group."""
    out = [Variant(f"-{s}", (s,), F.SOURCE_FEATURES[s]) for s in F.SOURCES]
    out += [Variant(f"-{g}", (), feats) for g, feats in F.FEATURE_GROUPS.items()]
    return out


def _selector(cols: np.ndarray, keep_sources: np.ndarray):
    """A variant's ranker sees only its feature columns, on the rows some kept retriever proposed."""
    return lambda x, src: (x[:, cols], src[:, keep_sources].any(axis=1))


def run_ablation(evaluator: Evaluator, model: HybridRanker, full: ModelResult,
                 chosen: list[Variant] | None = None, budget_s: float | None = None) -> dict:
    """Every variant's metrics and its paired bootstrap CI against the full hybrid (variant - full).

    Variants run in order (retrievers first); once ``budget_s`` (default ``$SMARTRECO_ABLATION_BUDGET_S``
    or 300 s; 0 = no limit) has passed, the remaining ones are listed under ``not_run``."""
    if budget_s is None:
        budget_s = settings.ABLATION_BUDGET_S.get()
    t0 = time.monotonic()
    not_run: list[str] = []
    rows = getattr(model, "ranking_rows", None)
    if rows is None:
        raise ValueError("ablation: fit the hybrid with keep_ranking_rows = True first")
    pools = {}
    for r in evaluator.eval_rows:
        uc = model.user_candidates(int(r))
        pools[int(r)] = (uc.items, uc.features, F.source_matrix(uc))
    base = (LOW_SCORE + np.log1p(model.pop_end[1])).astype(np.float32)
    group_of_row = np.repeat(np.arange(len(rows["groups"])), rows["groups"])
    rounds = int(model.fit_info.get("rounds") or model.config.n_estimators)
    out: dict[str, dict] = {}
    for v in chosen or variants():
        if budget_s > 0 and time.monotonic() - t0 > budget_s:
            not_run.append(f"hybrid{v.name}")
            continue
        cols = np.array([i for i, n in enumerate(F.FEATURE_NAMES) if n not in v.drop_features])
        keep_sources = np.array([j for j, s in enumerate(F.SOURCES) if s not in v.drop_sources])
        row_keep = rows["sources"][:, keep_sources].any(axis=1)
        groups = np.bincount(group_of_row[row_keep], minlength=len(rows["groups"]))
        booster, _ = train_ranker(
            rows["x"][row_keep][:, cols], rows["y"][row_keep], groups[groups > 0], rows["users"][row_keep],
            model.config, names=[F.FEATURE_NAMES[i] for i in cols], rounds=rounds,
        )
        name = f"hybrid{v.name}"
        variant = RescoredPools(name, pools, booster, _selector(cols, keep_sources), base)
        res = evaluator.evaluate(variant, name, fit=False)
        out[name] = {
            "dropped_sources": list(v.drop_sources),
            "dropped_features": list(v.drop_features),
            "metrics": {M.metric_key(m, evaluator.k): res.metrics[M.metric_key(m, evaluator.k)]
                        for m in ABLATION_METRICS},
            "vs_full": {M.metric_key(m, evaluator.k): compare(res, full, m) for m in ABLATION_METRICS},
        }
    return {"reference": full.name, "rounds": rounds, "variants": out, "not_run": not_run,
            "budget_s": budget_s, "seconds": round(time.monotonic() - t0, 1)}
