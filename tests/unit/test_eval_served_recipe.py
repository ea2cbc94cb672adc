"""`smartreco evaluate` scores what the pipeline serves: one recipe (smartreco.models.served) for the pipeline's
parameters, train_cf, HybridConfig and the standalone `cf` / `cb` rows, and the scored hybrid is given the
scored standalone CF the way train_hybrid is given train_cf's model."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hybrid_tiny import tiny_data

from smartreco.models import served
from smartreco.models.hybrid import HybridConfig
from smartreco.models.registry import get_model

pytestmark = [pytest.mark.unit]


def test_pipeline_train_cf_and_hybrid_config_share_the_served_recipe():
    from pipelines.training import training_pipeline
    from smartreco.training import train_cf

    pipeline = inspect.signature(training_pipeline.pipeline_func).parameters
    assert pipeline["embedding_dim"].default == HybridConfig().n_factors == served.CF_FACTORS
    assert pipeline["epochs"].default == HybridConfig().cf_max_epochs == served.CF_MAX_EPOCHS
    assert pipeline["content_encoder"].default == HybridConfig().content == served.CONTENT_ENCODER
    assert inspect.signature(train_cf).parameters["n_factors"].default == served.CF_FACTORS


def test_the_standalone_rows_are_the_served_models():
    cf = get_model("cf")
    assert (cf.config.dim, cf.config.max_epochs, cf.config.train_on) == (
        served.CF_FACTORS,
        served.CF_MAX_EPOCHS,
        served.CF_TRAIN_ON,
    )
    cb = get_model("cb")
    assert cb.config.numeric_popularity is False  # the CB node's vectors carry no popularity column


def test_the_scored_hybrid_serves_the_scored_standalone_cf(monkeypatch):
    from smartreco.evaluation.run import run_evaluation
    from smartreco.models.registry import MODEL_FACTORIES

    # the served recipe, shrunk so the test is quick (the hand-over does not depend on the size)
    monkeypatch.setitem(MODEL_FACTORIES, "cf", lambda **kw: served.served_cf(dim=8, max_epochs=2, **kw))
    result = run_evaluation(
        tiny_data(),
        ["hybrid", "mostpop", "cf"],
        progress=False,
        ablation=False,
        hybrid_config={"content": "hashed", "cb_dims": 16, "n_estimators": 20, "min_data_in_leaf": 5, "nbr_k": 20},
    )
    assert list(result.models) == ["cf", "hybrid", "mostpop"]  # cf fitted first, then handed over
    assert "standalone `cf`" in result.protocol["hybrid_cf"]
    assert result.protocol["hybrid_recipe"]["source"] == "default"  # no bundle given: HybridConfig + overrides
    hybrid_params = result.models["hybrid"].params
    assert hybrid_params["cf_model"]["model"] == "lightning-mf" and hybrid_params["cf_model"]["dim"] == 8
    assert result.protocol["target_reads"]["count"] == 3
    assert np.isfinite(result.models["cf"].metrics["ndcg@10"])
