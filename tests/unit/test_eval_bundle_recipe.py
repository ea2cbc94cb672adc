"""The evaluate step scores the recipe the challenger bundle records (its manifest's ``params``), refitted the
way the champion's is, not the default recipe: a pipeline run with ``content_encoder=hashed`` and small CF
sizes is judged by the gate on a hashed hybrid with those CF sizes."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from hybrid_tiny import tiny_config, tiny_data
from kfp.dsl import HTML, Dataset, Markdown, Metrics, Model

from smartreco.evaluation.run import recipe_cf

pytestmark = [pytest.mark.unit]

#: what train_cf records for ``embedding_dim=8, epochs=2`` (its meta; the hybrid copies it into the manifest)
CF_MODEL = {"model": "lightning-mf", "dim": 8, "factors": 8, "train_on": "positives", "fold_in": "ls",
            "params": {"dim": 8, "max_epochs": 2, "train_on": "auto", "seed": 42, "validate": True,
                       "progress": False, "best_epoch": 2}}


def _recipe() -> dict:
    """A bundle's params: the tiny recipe (fast) with the served CF backend and hashed content, and a
    standalone CF of 8 factors / 2 epochs; the default recipe (MiniLM, 64 factors, 600 trees) differs in each."""
    return {**asdict(tiny_config(cf_backend="lightning", content="hashed")), "cf_model": CF_MODEL}


@pytest.fixture()
def no_minilm(monkeypatch, tmp_path):
    """MiniLM replaced by a counter: a default-recipe hybrid would encode with it (and never download)."""
    import numpy as np

    from smartreco.features import embeddings

    calls: list[int] = []

    def encode_texts(texts, batch_size: int = 128, show_progress: bool = False):
        texts = [texts] if isinstance(texts, str) else list(texts)
        calls.append(len(texts))
        return np.ones((len(texts), embeddings.DIM), dtype=np.float32) / np.sqrt(embeddings.DIM)

    monkeypatch.setattr(embeddings, "encode_texts", encode_texts)
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    return calls


def test_the_component_scores_the_recipe_the_bundle_manifest_records(tmp_path, no_minilm):
    from components.evaluate.component import evaluate

    data = tiny_data()
    folder = tmp_path / "data"
    folder.mkdir()
    data.interactions.to_parquet(folder / "interactions.parquet", index=False)
    data.items.to_parquet(folder / "items.parquet", index=False)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"kind": "hybrid", "params": _recipe()}))

    report = Dataset(uri=str(tmp_path / "report"))
    evaluate.python_func(dataset=Dataset(uri=str(folder)), report=report, metrics=Metrics(uri=str(tmp_path / "m")),
                         html=HTML(uri=str(tmp_path / "e.html")), summary=Markdown(uri=str(tmp_path / "e.md")),
                         models="hybrid,mostpop", compare_champion=False, bundle=Model(uri=str(bundle)))
    payload = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    scored = payload["models"]["hybrid"]["params"]
    assert scored["content"] == "hashed" and no_minilm == [], "the default (MiniLM) recipe was scored"
    assert (scored["n_estimators"], scored["cb_dims"]) == (40, 32)  # the bundle's, not HybridConfig's defaults
    # given the standalone CF of the bundle's recipe (train-cf's embedding_dim / epochs), fitted on the split
    assert scored["cf_model"]["dim"] == 8 and scored["cf_model"]["params"]["max_epochs"] == 2
    recipe = payload["protocol"]["hybrid_recipe"]
    assert recipe["source"] == "bundle manifest" and recipe["content"] == "hashed"
    assert (recipe["standalone_cf"]["dim"], recipe["standalone_cf"]["max_epochs"]) == (8, 2)
    assert report.metadata["hybrid_recipe"] == recipe
    assert "Hybrid scored: the bundle manifest recipe (content hashed" in (tmp_path / "e.md").read_text()


def test_challenger_and_champion_are_refitted_from_their_records_by_one_function(tmp_path, no_minilm):
    from smartreco.training import evaluate

    params = _recipe()
    payload = evaluate(tiny_data(), tmp_path / "eval", ["hybrid", "mostpop"], progress=False, recipe=params,
                       champion={"version": "4", "params": params})
    challenger, champion = payload["protocol"]["hybrid_recipe"], payload["comparisons"]["champion"]
    assert champion["version"] == "4" and no_minilm == []
    assert {**champion["champion_recipe"], "source": "", "cf_line": ""} == {**challenger, "source": "",
                                                                            "cf_line": ""}
    assert "served CF recipe" in champion["champion_recipe"]["cf_line"]  # the champion got its bundle's CF too


def test_the_cf_recipe_of_a_manifest():
    assert recipe_cf(_recipe()) == {"dim": 8, "max_epochs": 2, "train_on": "auto", "seed": 42, "validate": True}
    # a manifest from before the CF recipe was recorded: its factors; the rest is the served recipe
    assert recipe_cf({"cf_backend": "lightning", "cf_model": {"model": "lightning-mf", "dim": 16}}) == {"dim": 16}
    assert recipe_cf({"cf_backend": "lightning"}) is None  # no standalone CF: the hybrid refitted its own
    assert recipe_cf({"cf_backend": "svd", "cf_model": CF_MODEL}) is None
