"""One evaluation loop for every :class:`Recommender` on the ARCHITECTURE §5 protocol.

The evaluator prepares the split once (train matrix, items each user saw in train, test targets,
popularity), then for each model: fit (timed), score users in batches, mask train items, take the
top-k with ``argpartition``, and compute per-user metrics. Per-user rows are kept so two models can
be compared with a paired bootstrap on the same users.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData, positive_mask
from smartreco.evaluation import metrics as M
from smartreco.evaluation.split import Split, temporal_split
from smartreco.evaluation.stats import DEFAULT_SAMPLES, DEFAULT_SEED, paired_bootstrap
from smartreco.models.base import InteractionMatrix, Recommender, TrainData
from smartreco.models.registry import PEERS

#: the peers every evaluation reports (ARCHITECTURE §5), listed once in ``smartreco.models.registry``
BASELINE_PEERS: tuple[str, ...] = PEERS
#: share of the catalogue (by train popularity) that counts as the popular head
POPULAR_HEAD = 0.10
N_TARGETS = "n_targets"
ACTIVITY = "train_interactions"


@dataclass
class ModelResult:
    """Aggregate metrics, per-user metrics (for the bootstrap) and the top-k lists of one model."""

    name: str
    metrics: dict[str, float]
    per_user: pd.DataFrame  # index user_id; one column per ranking metric + n_targets + train_interactions
    top_items: np.ndarray  # (n_users, k) item indices, aligned with per_user
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.metrics, "params": self.params}


@dataclass
class EvaluationResult:
    """Everything one run produced; :meth:`to_json` is the `smartreco evaluate` output contract."""

    protocol: dict
    models: dict[str, ModelResult]
    skipped: dict[str, str] = field(default_factory=dict)
    comparisons: dict = field(default_factory=dict)
    #: further peer comparisons by metric key (e.g. ``recall@10``), same layout as ``comparisons``
    more_comparisons: dict = field(default_factory=dict)
    ablation: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {
            "protocol": self.protocol,
            "models": {name: res.to_dict() for name, res in self.models.items()},
            "skipped": dict(self.skipped),
            "comparisons": self.comparisons,
        }
        if self.more_comparisons:
            out["more_comparisons"] = self.more_comparisons
        if self.ablation:
            out["ablation"] = self.ablation
        return out


class Evaluator:
    """Prepared split + catalogue; :meth:`evaluate` fits and scores one model at a time."""

    def __init__(
        self,
        split: Split,
        items: pd.DataFrame,
        *,
        k: int = M.DEFAULT_K,
        batch_size: int = 512,
        progress: bool = True,
    ) -> None:
        self.split = split
        self.items = items
        self.k = k
        self.batch_size = batch_size
        self.progress = progress
        #: one entry per ranking scored against the held-out targets (the discipline's "test reads")
        self.target_reads: list[str] = []
        self.train_data = TrainData.from_interactions(split.train, items)
        matrix = self.train_data.matrix
        self.n_items = matrix.n_items
        # every (user, item) seen in train, positive or not, is excluded from the candidates
        self.seen = InteractionMatrix.build(split.train, matrix.item_ids, matrix.user_ids).matrix.tocsr()
        self.seen.data[:] = 1.0

        positives = split.test[positive_mask(split.test)]
        target_users = pd.Index(matrix.user_ids).get_indexer(positives[C.USER_ID])
        target_items = pd.Index(matrix.item_ids).get_indexer(positives[C.ITEM_ID])
        keep = (target_users >= 0) & (target_items >= 0)
        targets = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (target_users[keep], target_items[keep])),
            shape=(matrix.n_users, self.n_items),
        )
        targets.data[:] = 1.0
        targets = (targets - targets.multiply(self.seen)).tocsr()  # a seen item can never be recommended
        targets.eliminate_zeros()
        n_targets = np.diff(targets.indptr)
        self.eval_rows = np.flatnonzero(n_targets > 0)
        self.eval_users = matrix.user_ids[self.eval_rows]
        self.targets = targets[self.eval_rows].tocsr()
        self.targets.data[:] = 1.0
        self.n_targets = n_targets[self.eval_rows]
        self.activity = np.diff(self.seen.indptr)[self.eval_rows]

        # beyond-accuracy references: train popularity (distinct users) and item categories
        popularity = np.asarray(self.seen.sum(axis=0)).ravel()
        self.self_information = M.item_self_information(popularity, matrix.n_users)
        head = max(1, math.ceil(POPULAR_HEAD * self.n_items))
        self.is_popular = np.zeros(self.n_items, dtype=bool)
        self.is_popular[np.argsort(-popularity, kind="stable")[:head]] = True
        cats = items.set_index(C.ITEM_ID)[C.CATEGORY].reindex(matrix.item_ids).fillna("unknown")
        self.item_category, _ = pd.factorize(cats)

    @classmethod
    def from_data(cls, data: CanonicalData, **kwargs) -> Evaluator:
        return cls(temporal_split(data.interactions), data.items, **kwargs)

    def protocol(self) -> dict:
        """What was measured, for the JSON and the report."""
        return {
            **self.split.describe(),
            "targets": "test positives (rating >= 4 or purchase/like) the user did not see in train",
            "candidates": "all catalogue items the user did not interact with in train",
            "k": self.k,
            "catalogue_items": int(self.n_items),
            "evaluated_users": int(len(self.eval_rows)),
            "popular_head": POPULAR_HEAD,
            "novelty": "mean -log2(share of train users who interacted with the item)",
            "diversity": "mean intra-list category entropy (bits)",
        }

    def rank(self, model: Recommender) -> np.ndarray:
        """Top-k item indices for every evaluated user, train items masked; ``(n_users, k)``."""
        k = min(self.k, self.n_items)
        out = np.empty((len(self.eval_rows), k), dtype=np.int64)
        starts = range(0, len(self.eval_rows), self.batch_size)
        for start in tqdm(starts, desc=f"scoring {getattr(model, 'name', 'model')}", unit="batch",
                          disable=not self.progress, leave=False):
            rows = self.eval_rows[start:start + self.batch_size]
            scores = np.array(model.score_users(rows), dtype=np.float32)  # a copy: we write into it
            if scores.shape != (len(rows), self.n_items):
                raise ValueError(f"{type(model).__name__}.score_users returned shape {scores.shape}, "
                                 f"expected {(len(rows), self.n_items)}")
            scores[np.isnan(scores)] = -np.inf
            seen = self.seen[rows]
            scores[seen.nonzero()] = -np.inf
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            out[start:start + len(rows)] = np.take_along_axis(top, order, axis=1)
        return out

    def hits(self, top_items: np.ndarray) -> np.ndarray:
        """True where the ranked item is one of the user's targets."""
        rows = np.repeat(np.arange(top_items.shape[0]), top_items.shape[1])
        return np.asarray(self.targets[rows, top_items.ravel()]).reshape(top_items.shape) > 0

    def score_ranking(self, name: str, top_items: np.ndarray) -> ModelResult:
        """Metrics of a ranking produced by :meth:`rank` (or any aligned top-k matrix); every call is one
        read of the held-out targets and is counted in :attr:`target_reads`."""
        self.target_reads.append(name)
        per_user = M.per_user_metrics(self.hits(top_items), self.n_targets)
        frame = pd.DataFrame(per_user, index=pd.Index(self.eval_users, name=C.USER_ID))
        frame[N_TARGETS] = self.n_targets
        frame[ACTIVITY] = self.activity
        metrics = {M.metric_key(m, self.k): float(frame[m].mean()) for m in M.RANKING_METRICS}
        metrics[M.COVERAGE] = M.catalogue_coverage(top_items, self.n_items)
        metrics[M.DIVERSITY] = float(M.intra_list_entropy(top_items, self.item_category).mean())
        metrics[M.NOVELTY] = float(M.novelty(top_items, self.self_information).mean())
        metrics[M.POPULAR_SHARE] = float(M.popular_share(top_items, self.is_popular).mean())
        return ModelResult(name=name, metrics=metrics, per_user=frame, top_items=top_items)

    def evaluate(self, model: Recommender, name: str | None = None, *, fit: bool = True) -> ModelResult:
        """Fit on train (timed, including any tuning the model does on its validation split), rank, score."""
        name = name or getattr(model, "name", type(model).__name__)
        fit_seconds = 0.0
        if fit:
            t0 = time.perf_counter()
            model.fit(self.train_data)
            fit_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        top = self.rank(model)
        rank_seconds = time.perf_counter() - t0
        result = self.score_ranking(name, top)
        result.metrics[M.FIT_SECONDS] = float(fit_seconds)
        result.metrics[M.MS_PER_USER] = float(1000.0 * rank_seconds / max(1, len(self.eval_rows)))
        result.params = dict(model.params())
        return result


def compare(a: ModelResult, b: ModelResult, metric: str = M.NDCG, **bootstrap_kwargs) -> dict:
    """Paired bootstrap CI of ``a - b`` on ``metric`` over the users both evaluated."""
    joined = a.per_user[[metric]].join(b.per_user[[metric]], how="inner", lsuffix="_a", rsuffix="_b")
    boot = paired_bootstrap(joined[f"{metric}_a"].to_numpy(), joined[f"{metric}_b"].to_numpy(),
                            **bootstrap_kwargs)
    return {"reference": b.name, "metric": M.metric_key(metric, a.top_items.shape[1]), **boot.to_dict()}


def peer_comparisons(
    results: Mapping[str, ModelResult],
    peers: Iterable[str] = BASELINE_PEERS,
    *,
    metric: str = M.NDCG,
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict:
    """Each model vs the best peer other than itself, and vs MostPopular (the promotion floor)."""
    present = [p for p in peers if p in results]
    if not present:
        return {"best_peer": None, "metric": metric, "by_model": {}}
    key = M.metric_key(metric, next(iter(results.values())).top_items.shape[1])
    ranked = sorted(present, key=lambda p: results[p].metrics[key], reverse=True)
    by_model: dict[str, dict] = {}
    for name, res in results.items():
        entry: dict[str, dict] = {}
        others = [p for p in ranked if p != name]
        if others:
            entry["vs_best_peer"] = compare(res, results[others[0]], metric, samples=samples, seed=seed)
        if "mostpop" in results and name != "mostpop":
            entry["vs_mostpop"] = compare(res, results["mostpop"], metric, samples=samples, seed=seed)
        by_model[name] = entry
    return {"best_peer": ranked[0], "metric": key, "samples": samples, "seed": seed, "by_model": by_model}


def evaluate_models(
    evaluator: Evaluator,
    models: Mapping[str, Recommender],
    *,
    skipped: Mapping[str, str] | None = None,
    peers: Iterable[str] = BASELINE_PEERS,
    extra_protocol: Mapping | None = None,
    on_fitted: Callable[[str, Recommender], None] | None = None,
) -> EvaluationResult:
    """Evaluate several models on one prepared split (in ``models`` order) and compare them with the peers.

    ``on_fitted(name, model)`` runs after each model is scored, e.g. to hand a fitted part to a later
    model; a line per model (fit seconds, NDCG@10) goes to the progress output, since a run on a busy
    machine takes long enough that one wants to see where it is."""
    results: dict[str, ModelResult] = {}
    bar = tqdm(list(models.items()), desc="models", unit="model", disable=not evaluator.progress)
    for name, model in bar:
        bar.set_postfix_str(name)
        results[name] = res = evaluator.evaluate(model, name)
        if evaluator.progress:
            key = M.metric_key(M.NDCG, evaluator.k)
            bar.write(f"[evaluate] {name}: fit {res.metrics[M.FIT_SECONDS]:.1f} s, {key} {res.metrics[key]:.4f}")
        if on_fitted is not None:
            on_fitted(name, model)
    protocol = {**evaluator.protocol(), **(extra_protocol or {})}
    return EvaluationResult(
        protocol=protocol,
        models=results,
        skipped=dict(skipped or {}),
        comparisons=peer_comparisons(results, peers),
    )
