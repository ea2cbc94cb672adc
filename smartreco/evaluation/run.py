"""One evaluation run end to end (load -> split -> every model -> comparisons), shared by
`smartreco evaluate`, `benchmarks/accuracy.py` and the KFP evaluate component."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from smartreco.data.canonical import CanonicalData
from smartreco.evaluation import metrics as M
from smartreco.evaluation.evaluator import EvaluationResult, Evaluator, evaluate_models, peer_comparisons
from smartreco.evaluation.split import temporal_split, validation_split
from smartreco.models.base import Recommender
from smartreco.models.hybrid import HybridRanker
from smartreco.models.registry import PEERS, build_models
from smartreco.models.served import cf_artifacts, served_cf


def run_evaluation(
    data: CanonicalData,
    model_names: list[str] | None = None,
    *,
    progress: bool = True,
    warn: Callable[[str], None] = print,
    ablation: bool = True,
    validation: bool = False,
    hybrid_config: dict | None = None,
    embedding_cache_dir: Path | str | None = None,
) -> EvaluationResult:
    """Evaluate ``model_names`` (default: every registered model) in one run on the §5 protocol.

    Models that cannot be imported are skipped with a warning and listed under ``skipped``.
    ``ablation``: also the hybrid without each retriever / feature group, each vs the full hybrid.
    ``validation``: train and score inside the training window (the same rule cut once more), so
    choices can be tuned without reading the test split; the result says which split it read.
    ``embedding_cache_dir``: the MiniLM cache of the models that encode item text (:func:`use_embedding_cache`)."""
    models, skipped = build_models(model_names, warn=warn)
    if hybrid_config and "hybrid" in models:  # e.g. {"cf_backend": "svd"}: a non-default hybrid, said so below
        from smartreco.models.hybrid import HybridConfig

        models["hybrid"] = HybridRanker(HybridConfig(**hybrid_config))
    models = use_embedding_cache(models, embedding_cache_dir)
    split = temporal_split(data.interactions)
    if validation:
        split = validation_split(split.train)
    evaluator = Evaluator(split, data.items, progress=progress)
    hybrid = models.get("hybrid")
    if ablation and hybrid is not None:
        hybrid.keep_ranking_rows = True
    models, on_fitted, hybrid_cf = _served_cf_for_hybrid(models, evaluator)
    result = evaluate_models(
        evaluator, models, skipped=skipped, peers=PEERS, on_fitted=on_fitted,
        extra_protocol={
            "source": data.source,
            "models_requested": list(model_names) if model_names else "all registered",
            "models_run": list(models),
            "evaluated_split": "validation (inside train; test not read)" if validation else "test",
            "hybrid_config_overrides": dict(hybrid_config or {}),
            "hybrid_cf": hybrid_cf,
        },
    )
    recall = peer_comparisons(result.models, PEERS, metric=M.RECALL)
    result.more_comparisons = {recall["metric"]: recall} if recall.get("best_peer") else {}
    if ablation and hybrid is not None and "hybrid" in result.models:
        from smartreco.evaluation.ablation import run_ablation

        result.ablation = run_ablation(evaluator, hybrid, result.models["hybrid"])
        hybrid.ranking_rows = None
    reads = list(evaluator.target_reads)
    result.protocol["target_reads"] = {
        "split": "validation" if validation else "test",
        "count": len(reads),
        "configurations": reads,
        "rule": "each reported configuration scored once against the held-out targets",
    }
    return result


def use_embedding_cache(models: dict[str, Recommender], cache_dir: Path | str | None) -> dict[str, Recommender]:
    """Point every model that encodes item text with MiniLM at ``cache_dir`` (the pipeline's
    ``embedding_cache_dir``); returns ``models``. None leaves them on ContentConfig's default cache.

    Why: the cache is keyed by content hash, so the steps of one pipeline run (build-features, train-cb,
    evaluate) that share it encode each catalogue text once; without it each step re-encodes the catalogue.
    The hybrid gets the encoder its ``fit`` would build, with the cache (same name, same vectors); the
    standalone content model gets it in its config (``cache_dir`` is not one of its recorded params).
    A model given its own encoder (``content_encoder`` / ``embed_fn``) or cache is left alone."""
    if not cache_dir:
        return models
    from smartreco.models.content import ContentRecommender, content_encoder

    for model in models.values():
        if isinstance(model, HybridRanker) and model.content_encoder is None:
            cfg = model.config
            model.content_encoder = content_encoder(cfg.content, cache_dir=str(cache_dir), dims=cfg.cb_dims)
        elif isinstance(model, ContentRecommender) and model.embed_fn is None and not model.config.cache_dir:
            model.config.cache_dir = str(cache_dir)
    return models


def _served_cf_for_hybrid(models: dict[str, Recommender], evaluator: Evaluator
                          ) -> tuple[dict[str, Recommender], Callable | None, str]:
    """Give the hybrid the standalone Lightning CF the pipeline gives it (train_cf -> train_hybrid).

    Why: the bundle's final-window CF is train_cf's model, not a refit inside the hybrid, so the scored
    hybrid must be built the same way to be the served one; and the CF, the slowest part, is then fitted
    once for both. With ``cf`` among the models it is scored first (its own row) and handed over; without
    it, the served CF recipe is fitted on the same train (timed into the hybrid's fit) and not scored.
    Returns the models in run order, the hand-over hook and a line for the protocol."""
    hybrid = models.get("hybrid")
    if not isinstance(hybrid, HybridRanker) or hybrid.cf_model is not None or hybrid.config.cf_backend != "lightning":
        return models, None, "refit inside the hybrid" if hybrid is not None else "no hybrid"
    if "cf" not in models:
        t0 = time.perf_counter()
        hybrid.cf_model = cf_artifacts(served_cf().fit(evaluator.train_data))
        seconds = time.perf_counter() - t0
        return models, None, (f"served CF recipe (smartreco.models.served) fitted on the same train in "
                              f"{seconds:.1f} s (not in the hybrid's fit_seconds), given to the hybrid")
    order = [n for n in models if n != "cf"]
    order.insert(order.index("hybrid"), "cf")

    def hand_over(name: str, model: Recommender) -> None:
        if name == "cf":
            hybrid.cf_model = cf_artifacts(model)

    return {n: models[n] for n in order}, hand_over, "the standalone `cf` row's fitted model, given to the hybrid"


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_json(payload: dict, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return path
