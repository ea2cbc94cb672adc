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
from smartreco.models import served
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
    hybrid_params: dict | None = None,
) -> EvaluationResult:
    """Evaluate ``model_names`` (default: every registered model) in one run on the §5 protocol.

    Models that cannot be imported are skipped with a warning and listed under ``skipped``.
    ``ablation``: also the hybrid without each retriever / feature group, each vs the full hybrid.
    ``validation``: train and score inside the training window (the same rule cut once more), so
    choices can be tuned without reading the test split; the result says which split it read.
    ``embedding_cache_dir``: the MiniLM cache of the models that encode item text (:func:`use_embedding_cache`).
    ``hybrid_params``: a bundle manifest's ``params`` (the pipeline's train-hybrid output): the ``hybrid`` row is
    that recipe (:func:`hybrid_from_params`, given the standalone CF its bundle served: :func:`recipe_cf`),
    not the default one; the protocol's ``hybrid_recipe`` says which was scored."""
    if hybrid_params is not None and hybrid_config:
        from smartreco.errors import DataError

        raise DataError("run_evaluation: give hybrid_params (a bundle's recipe) or hybrid_config, not both")
    models, skipped = build_models(model_names, warn=warn)
    cf_recipe: dict | None = {}  # the served CF recipe as it is (smartreco.models.served)
    if hybrid_config and "hybrid" in models:  # e.g. {"cf_backend": "svd"}: a non-default hybrid, said so below
        from smartreco.models.hybrid import HybridConfig

        models["hybrid"] = HybridRanker(HybridConfig(**hybrid_config))
    if hybrid_params is not None and "hybrid" in models:
        models["hybrid"] = hybrid_from_params(hybrid_params)
        cf_recipe = recipe_cf(hybrid_params)
    models = use_embedding_cache(models, embedding_cache_dir)
    split = temporal_split(data.interactions)
    if validation:
        split = validation_split(split.train)
    evaluator = Evaluator(split, data.items, progress=progress)
    hybrid = models.get("hybrid")
    if ablation and hybrid is not None:
        hybrid.keep_ranking_rows = True
    models, on_fitted, hybrid_cf = served_cf_for_hybrid(models, evaluator, cf_recipe)
    result = evaluate_models(
        evaluator, models, skipped=skipped, peers=PEERS, on_fitted=on_fitted,
        extra_protocol={
            "source": data.source,
            "models_requested": list(model_names) if model_names else "all registered",
            "models_run": list(models),
            "evaluated_split": "validation (inside train; test not read)" if validation else "test",
            "hybrid_config_overrides": dict(hybrid_config or {}),
            "hybrid_cf": hybrid_cf,
            "hybrid_recipe": describe_recipe(models.get("hybrid"), cf_recipe,
                                             "bundle manifest" if hybrid_params is not None else "default"),
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


def hybrid_from_params(params: dict, cache_dir: Path | str | None = None) -> HybridRanker:
    """A fresh :class:`HybridRanker` with the recipe recorded in a bundle manifest's ``params`` (keys
    this code does not know are ignored, e.g. ``cf_model``: see :func:`recipe_cf`; a content encoder name
    selects the encoder); ``cache_dir``: its content encoder's MiniLM cache (None: ContentConfig's default).

    One function for both sides of the promotion gate: the challenger (the bundle train-hybrid wrote) and
    the registry's champion (its ``smartreco.params`` tag) are refitted from their records the same way."""
    from dataclasses import fields

    from smartreco.models.hybrid import HybridConfig

    known = {f.name for f in fields(HybridConfig)}
    model = HybridRanker(HybridConfig(**{k: v for k, v in params.items() if k in known}), progress=False)
    return use_embedding_cache({"hybrid": model}, cache_dir)["hybrid"]


def recipe_cf(params: dict) -> dict | None:
    """The :func:`~smartreco.models.served.served_cf` overrides of the standalone CF a bundle's hybrid was
    given (``params["cf_model"]``: train_cf's meta, its CFConfig under ``params``), or None when it had none
    (the hybrid refitted its own CF: the ``svd`` backend, or a bundle made without train_cf).

    Why: the served hybrid's final-window CF is train_cf's model and its earlier windows refit that model's
    recipe (factors, epoch cap), so the scored hybrid must get the same CF recipe (the pipeline's
    ``embedding_dim`` / ``epochs``), fitted on the split's train. Manifests written before the CF recipe
    was recorded carry only its factors (``dim``): the other fields fall back to the served recipe."""
    given = params.get("cf_model")
    if not isinstance(given, dict) or params.get("cf_backend", "lightning") != "lightning":
        return None
    from dataclasses import fields

    from smartreco.models.cf import CFConfig

    runtime = {"progress", "num_threads"}  # how the fit runs, not what it fits
    keys = ({f.name for f in fields(CFConfig)} - runtime) | {"validate"}
    recorded = given.get("params") if isinstance(given.get("params"), dict) else {}
    out = {k: v for k, v in recorded.items() if k in keys}
    if "dim" not in out and isinstance(given.get("dim"), int):
        out["dim"] = int(given["dim"])
    return out


def describe_recipe(hybrid: Recommender | None, cf_recipe: dict | None, source: str) -> dict:
    """What the report says the ``hybrid`` row is: where its recipe came from (``default`` or ``bundle
    manifest``), its content encoder, CF backend and the standalone CF recipe it was given."""
    if not isinstance(hybrid, HybridRanker):
        return {"source": source, "hybrid": "none"}
    cfg = hybrid.config
    cf: dict | str = "refit inside the hybrid"
    if cf_recipe is not None and cfg.cf_backend == "lightning":
        cf = {"dim": served.CF_FACTORS, "max_epochs": served.CF_MAX_EPOCHS, "train_on": served.CF_TRAIN_ON,
              **{k: v for k, v in cf_recipe.items() if k in ("dim", "max_epochs", "train_on", "seed")}}
    return {"source": source, "content": cfg.content, "cf_backend": cfg.cf_backend, "standalone_cf": cf}


def served_cf_for_hybrid(models: dict[str, Recommender], evaluator: Evaluator, cf_recipe: dict | None
                         ) -> tuple[dict[str, Recommender], Callable | None, str]:
    """Give the hybrid the standalone Lightning CF the pipeline gives it (train_cf -> train_hybrid).

    Why: the bundle's final-window CF is train_cf's model, not a refit inside the hybrid, so the scored
    hybrid must be built the same way to be the served one; and the CF, the slowest part, is then fitted
    once for both. ``cf_recipe``: :func:`~smartreco.models.served.served_cf` overrides (``{}``: the served
    recipe; a bundle's: :func:`recipe_cf`); None: the recipe had no standalone CF, the hybrid refits its own.
    With ``cf`` among the models and of that recipe it is scored first (its own row) and handed over;
    otherwise the recipe is fitted on the same train (timed into the hybrid's fit) and not scored.
    Returns the models in run order, the hand-over hook and a line for the protocol."""
    hybrid = models.get("hybrid")
    if (not isinstance(hybrid, HybridRanker) or hybrid.cf_model is not None or cf_recipe is None
            or hybrid.config.cf_backend != "lightning"):
        return models, None, "refit inside the hybrid" if hybrid is not None else "no hybrid"
    if "cf" not in models or (cf_recipe and not _same_cf(models["cf"], served_cf(**cf_recipe))):
        t0 = time.perf_counter()
        hybrid.cf_model = cf_artifacts(served_cf(**cf_recipe).fit(evaluator.train_data))
        seconds = time.perf_counter() - t0
        recipe = f" with {cf_recipe}" if cf_recipe else ""
        return models, None, (f"served CF recipe (smartreco.models.served){recipe} fitted on the same train in "
                              f"{seconds:.1f} s (not in the hybrid's fit_seconds), given to the hybrid")
    order = [n for n in models if n != "cf"]
    order.insert(order.index("hybrid"), "cf")

    def hand_over(name: str, model: Recommender) -> None:
        if name == "cf":
            hybrid.cf_model = cf_artifacts(model)

    return {n: models[n] for n in order}, hand_over, "the standalone `cf` row's fitted model, given to the hybrid"


def _same_cf(a: Recommender, b: Recommender) -> bool:
    """Whether the standalone ``cf`` row fits the CF recipe ``b`` (then it is handed over, not refitted)."""
    from dataclasses import asdict

    runtime = ("progress", "num_threads")

    def recipe(m: Recommender) -> dict | None:
        config = getattr(m, "config", None)
        if config is None:
            return None
        kept = {k: v for k, v in asdict(config).items() if k not in runtime}
        return {**kept, "validate": getattr(m, "validate", None)}

    return type(a) is type(b) and recipe(a) == recipe(b)


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
