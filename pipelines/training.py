"""The training pipeline (ARCHITECTURE §4): ingest -> validate -> build_features -> materialize_features ->
(train_cf || train_cb) -> train_hybrid -> evaluate -> register -> [gate] deploy, plus a run summary.

Cluster settings live here, per step:
* caching: on for pure steps (same inputs -> same outputs), OFF for steps with side effects or that
  read the outside world: ingest (the source changes), materialize_features (writes the online
  store), register (MLflow registry), deploy (kubectl / local graph), summary (cheap, always fresh);
* retries: on the steps that touch flaky services (ingest, materialize_features, register, deploy);
* resources: CPU/memory requests and limits sized from the MovieLens run (kfp.local ignores them);
* the gate: ``evaluate`` takes train-hybrid's bundle and refits the recipe its manifest records (this run's
  content encoder and CF sizes, not the defaults) and the current champion's recipe on the same split, by one
  function (paired bootstrap of challenger - champion; it reads the registry, so it is not cached);
  ``register`` registers every model
  as ``challenger`` and promotes to ``champion`` only when the hybrid beats MostPopular and the CI's lower
  bound is above -``gate_margin`` (non-inferiority); ``summary`` adds the absolute floor
  ``gate_min_ndcg`` (demoting a promoted version that misses it) and returns ``promoted``; ``deploy``
  runs inside ``dsl.If(promoted == True)``, so a losing model is never deployed.
"""

from kfp import dsl

from components.build_features.component import build_features
from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.ingest.component import ingest
from components.materialize_features.component import materialize_features
from components.register.component import register
from components.summary.component import summary
from components.train_cb.component import train_cb
from components.train_cf.component import train_cf
from components.train_hybrid.component import train_hybrid
from components.validate.component import validate
from pipelines.tasks import configure_task
from smartreco.models import served

PIPELINE_NAME = "smartreco-training"

#: (cpu request, cpu limit, memory request, memory limit) per step on a cluster
RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "ingest": ("500m", "1", "1Gi", "2Gi"),
    "validate": ("500m", "1", "1Gi", "2Gi"),
    "build-features": ("1", "2", "2Gi", "6Gi"),
    "materialize-features": ("500m", "1", "1Gi", "2Gi"),
    "train-cf": ("1", "2", "2Gi", "4Gi"),
    "train-cb": ("1", "2", "2Gi", "4Gi"),
    "train-hybrid": ("1", "2", "3Gi", "8Gi"),
    "evaluate": ("1", "2", "3Gi", "8Gi"),
    "register": ("250m", "1", "1Gi", "2Gi"),
    "summary": ("100m", "500m", "256Mi", "512Mi"),
    "deploy": ("100m", "500m", "256Mi", "512Mi"),
}
#: steps whose outputs depend on more than their inputs or that change the world: never cached
UNCACHED = frozenset({"ingest", "materialize-features", "evaluate", "register", "summary", "deploy"})
#: steps that talk to services that may blip (object store, MLflow, Feast, the API server)
RETRIED = {"ingest": 2, "materialize-features": 2, "register": 2, "deploy": 2}


def configure(task: dsl.PipelineTask, step: str) -> dsl.PipelineTask:
    """Caching, retries, resources and a display name for one step (the cluster honours all of them)."""
    return configure_task(task, step, RESOURCES, cache=step not in UNCACHED, retries=RETRIED.get(step, 0))


def _params_json(*values) -> str:
    """Placeholders for the run summary: KFP substitutes the parameter values at run time."""
    keys = ("source", "sample_users", "embedding_dim", "content_encoder", "gate_min_ndcg", "deploy_target")
    return "{" + ", ".join(f'"{k}": "{v}"' for k, v in zip(keys, values, strict=True)) + "}"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="SmartReco: ingest -> validate -> features -> Feast -> CF || CB -> "
    "hybrid -> evaluate -> register (gate) -> deploy",
)
def training_pipeline(
    source: str = "movielens",
    events: str = "",
    live_items: str = "",
    sample_users: int = 0,
    seed: int = 7,
    embedding_dim: int = served.CF_FACTORS,
    epochs: int = served.CF_MAX_EPOCHS,
    content_encoder: str = served.CONTENT_ENCODER,
    embedding_cache_dir: str = "",
    online_store: str = "sqlite",
    eval_models: str = "hybrid,mostpop,ease",
    gate_min_ndcg: float = 0.0,
    gate_margin: float = 0.01,
    deploy_target: str = "auto",
    deploy_namespace: str = "",
) -> None:
    """``events``: the serving graph's event log (a segment folder, or the shared ``redis://`` stream): what
    users did with served answers joins ``source``'s interactions (empty: the source only); ``live_items``: the
    graph state (SQLite file or ``redis://``) whose items added since the last retrain join the items;
    ``embedding_dim``/``epochs``: the Lightning CF's factors and epoch cap (early stopping may end
    sooner); ``eval_models``: evaluated with the hybrid (MostPopular
    is the promotion floor and must stay); ``sample_users`` > 0 trains on that many random users (tests,
    smoke runs); ``gate_min_ndcg`` is an
    absolute floor on the gate metric on top of "beats MostPopular and the champion" (set it above 1
    to force the gate to fail); ``gate_margin``: the non-inferiority margin delta: promote when the paired
    bootstrap CI of challenger - champion (champion refitted on the same split in ``evaluate``) has its lower
    bound above -delta and the challenger beats MostPopular (>= 1 promotes any candidate, <= -1 none;
    README "Promotion gate"); ``content_encoder``: the CB node's vectors (MiniLM + TF-IDF + numeric;
    ``hashed`` for smoke runs);
    ``deploy_target``: auto | local | cluster | rehearsal (``smartreco rehearse apply``); ``embedding_cache_dir``:
    MiniLM vectors cached by content hash, one cache for every step that encodes item text (build-features,
    train-cb, evaluate), so a run encodes each text once (local runs pass ``<runs>/embeddings``; empty:
    build-features caches nothing and train-cb/evaluate use ``<runs>/cache/minilm`` of their own runs folder)."""
    ing = configure(
        ingest(source=source, events=events, live_items=live_items, sample_users=sample_users, seed=seed), "ingest"
    )
    val = configure(validate(dataset=ing.outputs["dataset"]), "validate")
    feats = configure(
        build_features(dataset=ing.outputs["dataset"], embedding_cache_dir=embedding_cache_dir), "build-features"
    )
    feats.after(val)
    mat = configure(
        materialize_features(features=feats.outputs["features"], online_store=online_store), "materialize-features"
    )
    cf = configure(train_cf(dataset=ing.outputs["dataset"], n_factors=embedding_dim, epochs=epochs), "train-cf")
    cb = configure(
        train_cb(dataset=ing.outputs["dataset"], encoder=content_encoder, embedding_cache_dir=embedding_cache_dir),
        "train-cb",
    )
    for t in (cf, cb):
        t.after(val)
    hyb = configure(
        train_hybrid(dataset=ing.outputs["dataset"], cb_vectors=cb.outputs["vectors"], cf_model=cf.outputs["model"]),
        "train-hybrid",
    )
    hyb.after(mat)  # serve only what the online store can feed
    ev = configure(  # scores the recipe train-hybrid's bundle records (this run's content encoder and CF sizes)
        evaluate(dataset=ing.outputs["dataset"], bundle=hyb.outputs["bundle"], models=eval_models,
                 embedding_cache_dir=embedding_cache_dir),
        "evaluate",
    )
    reg = configure(
        register(bundle=hyb.outputs["bundle"], report=ev.outputs["report"], gate_margin=gate_margin), "register"
    )
    gate = configure(
        summary(
            report=ev.outputs["report"],
            version=reg.outputs["Output"],
            metric_value=ev.outputs["Output"],
            gate_min_ndcg=gate_min_ndcg,
            params=_params_json(source, sample_users, embedding_dim, content_encoder, gate_min_ndcg, deploy_target),
        ),
        "summary",
    )
    with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - a KFP condition, not a bool
        configure(
            deploy(
                bundle=hyb.outputs["bundle"],
                model_version=reg.outputs["Output"],
                target=deploy_target,
                namespace=deploy_namespace,
                gate=gate.outputs["gate"],
            ),
            "deploy",
        )
