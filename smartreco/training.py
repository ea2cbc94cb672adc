"""Train-all orchestration: CF, CB, hybrid, evaluation, MLflow, serving bundle.

`smartreco train` and the KFP components (train_cf, train_cb, train_hybrid, evaluate, register) are
thin shells over the step functions here, so a pipeline run and a CLI run do the same work:

1. :func:`train_cf` / :func:`train_cb`: the standalone retrievers on all data (CF factors in the
   :mod:`smartreco.models.serving_math` artifact layout; content item vectors);
2. :func:`evaluate`: the ARCHITECTURE §5 protocol with the shared evaluator (hybrid + peers, paired
   bootstrap vs the best peer; the hybrid, the recipe the bundle records (content encoder, CF recipe),
   refits its retrievers on the split's own windows);
3. :func:`train_hybrid`: the hybrid on ALL data (retrievers on the earlier window, ranker on the later
   one, retrievers refitted) written as the serving bundle;
4. :func:`register`: MLflow run (params, metrics, reports, three pyfunc models) + registry aliases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData
from smartreco.errors import DataError
from smartreco.models import served
from smartreco.models.base import TrainData

#: what `smartreco train` and the pipeline's evaluate step run by default: the hybrid, the promotion floor
#: (MostPopular) and the strongest peer (EASE on MovieLens and synthetic)
DEFAULT_EVAL_MODELS: tuple[str, ...] = ("hybrid", "mostpop", "ease")
#: content encoders by name; the first is the served default (see smartreco.models.content.content_encoder)
ENCODERS = (served.CONTENT_ENCODER, "hashed", "minilm")
DEFAULT_ENCODER = ENCODERS[0]


def load(source: str) -> CanonicalData:
    from smartreco.data.sources import load_source

    return load_source(source)


def content_vectors(items: pd.DataFrame, encoder: str = DEFAULT_ENCODER, dims: int = 256,
                    cache_dir: Path | str | None = None) -> np.ndarray:
    """Item content vectors by encoder name: ``minilm+tfidf+numeric`` (served: MiniLM sentence embeddings,
    cached by content hash, + TF-IDF + numeric item features; ``minilm`` is the same) or ``hashed``.

    ``cache_dir``: the MiniLM content-hash cache (the pipeline's ``embedding_cache_dir``, which build-features
    fills); None: ContentConfig's default, ``<runs>/cache/minilm``."""
    from smartreco.models.content import content_encoder

    if encoder not in ENCODERS:
        raise DataError(f"--encoder: expected one of {', '.join(ENCODERS)}, got {encoder!r}")
    encode = content_encoder(encoder, cache_dir=str(cache_dir) if cache_dir else None, dims=dims)
    return np.asarray(encode(items), dtype=np.float32)


def _encoder_from(vectors_dir: Path | None, encoder: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """Content encoder for the hybrid: precomputed vectors (train_cb output) aligned by item id, or fresh;
    named after the encoder that made the vectors (the bundle's ``params.content``)."""
    if vectors_dir is None:
        def fresh(items: pd.DataFrame) -> np.ndarray:
            return content_vectors(items, encoder)

        fresh.__name__ = _canonical_encoder(encoder)
        return fresh
    from smartreco.models.serving_math import load_item_vectors

    ids, vecs, cb_meta = load_item_vectors(vectors_dir)

    def aligned(items: pd.DataFrame) -> np.ndarray:
        rows = ids.get_indexer(items[C.ITEM_ID].astype(str))
        out = np.zeros((len(items), vecs.shape[1]), dtype=np.float32)
        out[rows >= 0] = vecs[rows[rows >= 0]]
        return out

    aligned.__name__ = _canonical_encoder(str(cb_meta.get("encoder", "unknown")))
    return aligned


def _canonical_encoder(name: str) -> str:
    from smartreco.models.content import MINILM_CONTENT

    return MINILM_CONTENT if name == "minilm" else name


# ------------------------------------------------------------------------------------------- steps
def train_cf(data: CanonicalData, out_dir: Path | str, n_factors: int = served.CF_FACTORS, *,
             backend: str = "lightning", epochs: int | None = None, seed: int = served.CF_SEED,
             train_on: str = served.CF_TRAIN_ON) -> dict:
    """Standalone CF retriever on all data, in the serving_math layout (factors + ids, and for the
    Lightning backend an ONNX scorer a torch-free node can run).

    ``lightning``: the PyTorch Lightning MF of :mod:`smartreco.models.cf` (sampled softmax, early
    stopping on a temporal validation split), exported with :func:`smartreco.models.onnx_export.export_cf`;
    ``train_on`` = "auto" picks positives-only or all interactions on that validation split; ``epochs``
    (default: the served cap, :data:`smartreco.models.served.CF_MAX_EPOCHS`) caps the early-stopped fit.
    ``svd``: PureSVD, the hybrid's internal CF backend (exact fold-in, seconds to fit).
    """
    from smartreco.models import serving_math as SM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train = TrainData.from_interactions(data.interactions, data.items)
    if backend == "lightning":
        from smartreco.models.cf import CFConfig, CFRecommender
        from smartreco.models.onnx_export import export_cf

        config = CFConfig(dim=n_factors, seed=seed, progress=False, train_on=train_on,
                          max_epochs=int(epochs or served.CF_MAX_EPOCHS)).check()
        model = CFRecommender(config).fit(train)
        export_cf(model, out)
        info = {"model": "lightning-mf", "factors": int(n_factors), "fold_in": "ls", "train_on": model.train_on,
                "val_ndcg10": {k: round(v, 5) for k, v in model.val_scores.items()}}
    elif backend == "svd":
        from smartreco.models.hybrid import svd_factors

        users, items = svd_factors(train.matrix.matrix, n_factors)
        np.save(out / SM.USER_FACTORS, users)
        np.save(out / SM.ITEM_FACTORS, items)
        np.save(out / SM.ITEM_BIAS, np.zeros(len(items), dtype=np.float32))
        SM.write_ids(out / SM.USER_IDS, train.matrix.user_ids)
        SM.write_ids(out / SM.ITEM_IDS, train.matrix.item_ids)
        info = {"model": "puresvd", "factors": int(items.shape[1]), "fold_in": "sum"}
    else:
        raise DataError(f"train_cf.backend: expected 'lightning' or 'svd', got {backend!r}")
    info.update({"users": int(train.matrix.n_users), "items": int(train.matrix.n_items),
                 "fit_seconds": round(time.perf_counter() - t0, 2)})
    meta_path = out / SM.CF_META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta_path.write_text(json.dumps({**meta, **info}, indent=2))
    return info


def train_cb(data: CanonicalData, out_dir: Path | str, encoder: str = DEFAULT_ENCODER, *,
             cache_dir: Path | str | None = None) -> dict:
    """Content item vectors (L2-normalised) in the serving_math layout (item_vectors.npy + ids);
    ``cache_dir``: the MiniLM content-hash cache (see :func:`content_vectors`)."""
    from smartreco.models import serving_math as SM
    from smartreco.models.content import describe_encoder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vecs = content_vectors(data.items, encoder, cache_dir=cache_dir)
    np.save(out / SM.ITEM_VECTORS, vecs)
    SM.write_ids(out / SM.ITEM_IDS, data.items[C.ITEM_ID].astype(str))
    info = {"encoder": _canonical_encoder(encoder), "dims": int(vecs.shape[1]), "items": int(len(vecs)),
            "fit_seconds": round(time.perf_counter() - t0, 2), "describe": describe_encoder(encoder)}
    (out / SM.CB_META).write_text(json.dumps(info, indent=2))
    return info


def evaluate(data: CanonicalData, out_dir: Path | str, models: tuple[str, ...] | list[str] = DEFAULT_EVAL_MODELS,
             progress: bool = True, champion: dict | None = None, ablation: bool = False, *,
             cache_dir: Path | str | None = None, recipe: dict | None = None) -> dict:
    """The §5 protocol over ``models`` (shared evaluator); writes evaluation.json / .md / .html.

    ``recipe``: the challenger's recipe, a bundle manifest's ``params`` (the pipeline passes train-hybrid's
    bundle): the ``hybrid`` row is that recipe refitted on the split, by the function that refits the
    champion (:func:`smartreco.evaluation.run.hybrid_from_params` + the standalone CF its bundle served), so
    the gate judges the model it registers; None: the default recipe (HybridConfig + the served CF), e.g.
    `smartreco evaluate`.
    ``champion`` (``{"version", "params"}``, :func:`smartreco.tracking.mlflow_tracking.champion_params`):
    the current champion's recipe is refitted and scored on the SAME split, and the paired bootstrap of
    hybrid - champion lands in ``comparisons["champion"]`` (what the promotion gate tests).
    ``cache_dir``: the MiniLM content-hash cache every content encoding here reads (the hybrid's, the ``cb``
    row's, the champion's); None: ContentConfig's default, ``<runs>/cache/minilm``."""
    from smartreco.evaluation.report import markdown_summary, write_html
    from smartreco.evaluation.run import run_evaluation, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run_evaluation(data, list(models), progress=progress, ablation=ablation, embedding_cache_dir=cache_dir,
                            hybrid_params=recipe)
    if champion and "hybrid" in result.models:
        result.comparisons["champion"] = _champion_comparison(data, result.models["hybrid"], champion, progress,
                                                              cache_dir=cache_dir)
    payload = result.to_json()
    write_json(payload, out / "evaluation.json")
    md = markdown_summary(payload, title=f"Evaluation: {data.source}")
    scored = payload["protocol"].get("hybrid_recipe") or {}
    if "content" in scored:
        md += (f"\nHybrid scored: the {scored['source']} recipe (content {scored['content']}, CF "
               f"{scored['cf_backend']}, standalone CF {scored['standalone_cf']}).\n")
    if "champion" in result.comparisons:
        c = result.comparisons["champion"]
        md += (f"\nChallenger (hybrid) vs the current champion v{c['version']} refitted on the same split: "
               f"{c['metric']} {c['champion_value']:.4f}, paired bootstrap of the difference {c['mean_diff']:+.4f}, "
               f"95% CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] over {c['n_users']} users.\n")
    (out / "evaluation.md").write_text(md)
    try:
        write_html(result, out / "evaluation.html")
    except Exception as exc:  # noqa: BLE001 - the HTML report is a nicety; JSON/Markdown are the contract
        (out / "evaluation.html").write_text(f"<p>HTML report unavailable: {type(exc).__name__}: {exc}</p>")
    return payload


def _champion_comparison(data: CanonicalData, hybrid_result, champion: dict, progress: bool, *,
                         cache_dir: Path | str | None = None) -> dict:
    """The champion's recipe refitted and scored on the split ``run_evaluation`` used (the same
    deterministic temporal split), then the paired bootstrap of challenger - champion. Refitted as the
    challenger's recipe is (:func:`smartreco.evaluation.run.hybrid_from_params`, given the standalone CF
    its bundle served)."""
    from smartreco.evaluation.evaluator import Evaluator, compare
    from smartreco.evaluation.run import describe_recipe, hybrid_from_params, recipe_cf, served_cf_for_hybrid
    from smartreco.evaluation.split import temporal_split

    params = champion.get("params") or {}
    evaluator = Evaluator(temporal_split(data.interactions), data.items, progress=progress)
    model, cf = hybrid_from_params(params, cache_dir), recipe_cf(params)
    _, _, cf_line = served_cf_for_hybrid({"hybrid": model}, evaluator, cf)
    res = evaluator.evaluate(model, "champion")
    out = compare(hybrid_result, res)
    return {**out, "version": str(champion.get("version")), "champion_value": float(res.metrics[out["metric"]]),
            "champion_recipe": {**describe_recipe(model, cf, "registry tag"), "cf_line": cf_line}}


def train_hybrid(data: CanonicalData, out_dir: Path | str, *, cb_dir: Path | str | None = None,
                 cf_dir: Path | str | None = None, encoder: str = DEFAULT_ENCODER, config=None,
                 meta: dict | None = None, progress: bool = True) -> Path:
    """The served hybrid: fitted on ALL data, written as a verified bundle directory.

    ``cf_dir`` (train_cf's output, Lightning backend): its factors are the bundle's CF, served by the CF
    node, and its ONNX scorer travels in the bundle (``extra/cf_scorer.onnx``); ``cb_dir`` (train_cb's
    output): the content vectors the CB node serves."""
    from smartreco.models import serving_math as SM
    from smartreco.models.content import describe_encoder

    train = TrainData.from_interactions(data.interactions, data.items)
    model = unfitted_hybrid(cb_dir=cb_dir, cf_dir=cf_dir, encoder=encoder, config=config, progress=progress)
    cf_model, encode = model.cf_model, model.content_encoder
    model.fit(train)
    extra = {}
    same_items = cf_model is not None and list(cf_model.item_ids) == [str(i) for i in model.item_ids]
    if same_items and (Path(cf_dir) / SM.CF_SCORER_ONNX).exists():  # the scorer's rows are the bundle's rows
        extra[SM.CF_SCORER_ONNX] = Path(cf_dir) / SM.CF_SCORER_ONNX
    served = {"cf": {"backend": model.config.cf_backend, "source": "train_cf" if cf_model else "refit in train_hybrid",
                     "onnx_scorer": bool(extra), "fold_in": model.fold_in},
              "cb": {"encoder": encode.__name__, **describe_encoder(encode.__name__)}}
    return model.save_bundle(Path(out_dir), meta={"source": data.source, "served": served, **(meta or {})},
                             extra_files=extra or None)


def unfitted_hybrid(*, cb_dir: Path | str | None = None, cf_dir: Path | str | None = None,
                    encoder: str = DEFAULT_ENCODER, config=None, progress: bool = False):
    """The unfitted hybrid :func:`train_hybrid` fits: its ``params()`` are the recipe its bundle records,
    which is what `smartreco train` evaluates before the bundle exists."""
    from smartreco.models import serving_math as SM
    from smartreco.models.hybrid import HybridRanker

    cf_model = SM.CFArtifacts.load(cf_dir) if cf_dir else None
    encode = _encoder_from(Path(cb_dir) if cb_dir else None, encoder)
    return HybridRanker(config, content_encoder=encode, progress=progress, cf_model=cf_model)


def register(bundle_dir: Path | str, evaluation: dict, *, params: dict | None = None,
             report_dir: Path | str | None = None, run_name: str = "train",
             kinds: tuple[str, ...] = ("cf", "cb", "hybrid"), gate_margin: float | None = None) -> dict:
    """One MLflow run: params, metrics of every evaluated model, reports, the three pyfunc models;
    then register each as ``challenger`` and let the gate decide ``champion`` (``gate_margin``: the
    gate's margin, see smartreco.tracking.gate.promotion_decision)."""
    import mlflow

    from smartreco.provenance import run_tags
    from smartreco.tracking import mlflow_tracking as T

    T.configure()
    models = evaluation.get("models", {})
    hybrid = models.get("hybrid", {})
    mostpop = models.get("mostpop")
    champion_ci = evaluation.get("comparisons", {}).get("champion")  # same-split paired bootstrap, if run
    if gate_margin is None:
        from smartreco.tracking.gate import DEFAULT_MARGIN

        gate_margin = DEFAULT_MARGIN
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(run_tags())  # the code that made the run, also where MLflow finds no git (images)
        T.log_params(params or {})
        manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
        T.log_params({"hybrid": manifest.get("params", {})}, prefix="bundle.")
        for name, metrics in models.items():
            T.log_metrics({k: v for k, v in metrics.items() if k != "params"}, prefix=f"{name}.")
        if report_dir is not None:
            for path in sorted(Path(report_dir).glob("evaluation.*")):
                mlflow.log_artifact(str(path), artifact_path="evaluation")
        mlflow.log_dict(evaluation, "evaluation/evaluation_full.json")
        uris = T.log_bundle_models(bundle_dir, kinds)
        registered = {}
        for kind, uri in uris.items():
            # each registered model is gated on the hybrid's numbers: all three serve from this bundle
            version, decision = T.register(uri, T.MODEL_NAMES[kind], _numeric(hybrid), _numeric(mostpop),
                                           margin=gate_margin, champion_ci=champion_ci,
                                           params=manifest.get("params", {}))
            registered[T.MODEL_NAMES[kind]] = {"version": version, **decision.to_dict()}
    return {"run_id": run.info.run_id, "tracking_uri": T.tracking_uri(), "models": uris, "registered": registered}


def _numeric(metrics: dict | None) -> dict[str, float] | None:
    if metrics is None:
        return None
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


# ------------------------------------------------------------------------------------------- all
def train_all(source: str, out_dir: Path | str | None = None, *, models: tuple[str, ...] = DEFAULT_EVAL_MODELS,
              encoder: str = DEFAULT_ENCODER, track: bool = True, progress: bool = True,
              echo: Callable[[str], None] = print) -> dict:
    """CF, CB, evaluation, hybrid bundle, MLflow: what `smartreco train` runs. Returns a summary."""
    from tqdm.auto import tqdm

    from smartreco.paths import runs_dir

    out = Path(out_dir) if out_dir else runs_dir() / "train" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    steps = ["load", "train_cf", "train_cb", "evaluate", "train_hybrid"] + (["register"] if track else [])
    summary: dict = {"source": source, "out_dir": str(out)}
    bar = tqdm(steps, desc="smartreco train", disable=not progress)
    for step in bar:
        bar.set_postfix_str(step)
        t0 = time.perf_counter()
        if step == "load":
            data = load(source)
        elif step == "train_cf":
            summary["cf"] = train_cf(data, out / "cf")
        elif step == "train_cb":
            summary["cb"] = train_cb(data, out / "cb", encoder)
        elif step == "evaluate":
            champion = None
            if track:
                from smartreco.tracking.mlflow_tracking import champion_params

                champion = champion_params()
            # the recipe train_hybrid will record (this run's content encoder and CF), not the default one
            recipe = unfitted_hybrid(cb_dir=out / "cb", cf_dir=out / "cf", encoder=encoder).params()
            evaluation = evaluate(data, out / "evaluation", models, progress=progress, champion=champion,
                                  recipe=recipe)
            summary["metrics"] = {name: {k: m.get(k) for k in ("ndcg@10", "recall@10")}
                                  for name, m in evaluation["models"].items()}
            summary["comparisons"] = evaluation.get("comparisons", {})
        elif step == "train_hybrid":
            bundle = train_hybrid(data, out / "bundle", cb_dir=out / "cb", cf_dir=out / "cf", progress=progress,
                                  meta={"metrics": evaluation["models"].get("hybrid", {})})
            summary["bundle"] = str(bundle)
        elif step == "register":
            summary["mlflow"] = register(bundle, evaluation, params={"source": source, "encoder": encoder},
                                         report_dir=out / "evaluation")
        summary.setdefault("seconds", {})[step] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
