"""Training components called through `comp.python_func` on a tiny canonical folder."""

from __future__ import annotations

import json

import pytest
from hybrid_tiny import tiny_data
from kfp.dsl import HTML, Dataset, Markdown, Metrics, Model

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data = tiny_data()
    data.interactions.to_parquet(root / "interactions.parquet", index=False)
    data.items.to_parquet(root / "items.parquet", index=False)
    return root


def test_training_components_chain(folder, tmp_path, monkeypatch):
    from components.evaluate.component import evaluate
    from components.register.component import register
    from components.train_cb.component import train_cb
    from components.train_cf.component import train_cf
    from components.train_hybrid.component import train_hybrid
    from smartreco.serving.bundle import ModelBundle

    ds = Dataset(uri=str(folder))
    cf, cf_m = Model(uri=str(tmp_path / "cf")), Metrics(uri=str(tmp_path / "cf_m"))
    assert train_cf.python_func(dataset=ds, model=cf, metrics=cf_m, n_factors=8, epochs=2) == 8
    assert (tmp_path / "cf" / "item_factors.npy").exists() and cf_m.metadata["cf_factors"] == 8.0
    assert (tmp_path / "cf" / "cf_scorer.onnx").exists(), "the Lightning CF must ship its ONNX scorer"
    assert cf.metadata["model"] == "lightning-mf"

    cb, cb_m = Model(uri=str(tmp_path / "cb")), Metrics(uri=str(tmp_path / "cb_m"))
    assert train_cb.python_func(dataset=ds, vectors=cb, metrics=cb_m, encoder="hashed") == 256

    bundle, h_m = Model(uri=str(tmp_path / "bundle")), Metrics(uri=str(tmp_path / "h_m"))
    h_sum = Markdown(uri=str(tmp_path / "h.md"))
    train_hybrid.python_func(dataset=ds, cb_vectors=cb, cf_model=cf, bundle=bundle, metrics=h_m, summary=h_sum)
    loaded = ModelBundle.load(bundle.path)
    assert loaded.manifest["kind"] == "hybrid" and h_m.metadata["hybrid_label_users"] > 0
    # the bundle serves train_cf's Lightning model (its factors and its ONNX scorer) and train_cb's vectors
    params, served = loaded.manifest["params"], loaded.manifest["served"]
    assert params["cf_backend"] == "lightning" and params["content"] == "hashed"
    assert served["cf"]["source"] == "train_cf" and served["cb"]["encoder"] == "hashed"
    assert params["cf_model"]["model"] == "lightning-mf" and "extra/cf_scorer.onnx" in loaded.manifest["files"]
    # the manifest records train_cf's recipe, so the evaluate step (and a later champion refit) refits it
    from smartreco.evaluation.run import recipe_cf

    assert {k: recipe_cf(params)[k] for k in ("dim", "max_epochs")} == {"dim": 8, "max_epochs": 2}
    # and `smartreco train`, which evaluates before the bundle exists, evaluates that same recorded recipe
    from smartreco.training import unfitted_hybrid

    assert json.loads(json.dumps(unfitted_hybrid(cb_dir=cb.path, cf_dir=cf.path).params())) == params
    import numpy as np

    assert np.allclose(loaded.side.item_factors, np.load(tmp_path / "cf" / "item_factors.npy"))
    assert type(loaded.cf_index).__name__ == "OnnxScorerIndex"
    user = str(loaded.user_index[0])
    onnx_top = loaded.cf_candidates(user, [], 5)
    loaded._cf_index = None
    loaded.onnx_cf = None  # the numpy exact index over the same factors must agree with the ONNX scorer
    assert list(loaded.cf_candidates(user, [], 5)) == list(onnx_top)
    assert "Hybrid bundle" in (tmp_path / "h.md").read_text()

    # the evaluate step's hybrid with the tiny test recipe (PureSVD + hashed: seconds); the served defaults
    # (Lightning CF, MiniLM content) are fitted in test_hybrid_served_parts
    from hybrid_tiny import tiny_config

    from smartreco.models import registry
    from smartreco.models.hybrid import HybridRanker

    monkeypatch.setitem(registry.MODEL_FACTORIES, "hybrid", lambda **_: HybridRanker(tiny_config(), progress=False))
    report = Dataset(uri=str(tmp_path / "report"))
    e_m, html, e_sum = Metrics(uri=str(tmp_path / "e_m")), HTML(uri=str(tmp_path / "e.html")), Markdown(
        uri=str(tmp_path / "e.md"))
    ndcg = evaluate.python_func(dataset=ds, report=report, metrics=e_m, html=html, summary=e_sum,
                                models="hybrid,mostpop", compare_champion=False)
    payload = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert set(payload["models"]) == {"hybrid", "mostpop"} and ndcg == payload["models"]["hybrid"]["ndcg@10"]
    assert "mostpop_ndcg_at_10" in e_m.metadata and (tmp_path / "e.html").stat().st_size > 0

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # restored after the test (the component sets it)
    r_sum = Markdown(uri=str(tmp_path / "r.md"))
    version = register.python_func(bundle=bundle, report=report, summary=r_sum, tracking_uri=uri)
    assert version == "1" and "smartreco-hybrid" in (tmp_path / "r.md").read_text()


def _counting_minilm(calls: list[int]):
    """Stands in for ``smartreco.features.embeddings.encode_texts`` (MiniLM): a unit vector seeded by each
    text's hash, and the number of texts of each call appended to ``calls``."""
    import hashlib

    import numpy as np

    from smartreco.features.embeddings import DIM

    def encode_texts(texts, batch_size: int = 128, show_progress: bool = False):
        texts = [texts] if isinstance(texts, str) else list(texts)
        calls.append(len(texts))
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:15], 16) for t in texts]
        vecs = np.stack([np.random.default_rng(s).standard_normal(DIM) for s in seeds]).astype(np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    return encode_texts


def test_train_cb_and_evaluate_read_the_cache_build_features_fills(folder, tmp_path, monkeypatch):
    """The pipeline's one ``embedding_cache_dir`` (pipelines/training.py passes it to all three): build-features
    encodes the catalogue, then train-cb and evaluate (its hybrid and ``cb`` rows, and the champion's refit)
    read the cached vectors and encode nothing; the runs folder's default cache is never touched."""
    from dataclasses import asdict, replace

    from hybrid_tiny import tiny_config

    from components.build_features.component import build_features
    from components.evaluate.component import evaluate
    from components.train_cb.component import train_cb
    from smartreco.evaluation.run import hybrid_from_params
    from smartreco.features import embeddings
    from smartreco.models import registry, served
    from smartreco.models.hybrid import HybridRanker

    calls: list[int] = []
    monkeypatch.setattr(embeddings, "encode_texts", _counting_minilm(calls))
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))  # where the default cache would be
    cache = tmp_path / "embeddings"
    ds = Dataset(uri=str(folder))
    n_texts = tiny_data().items.shape[0]

    build_features.python_func(dataset=ds, features=Dataset(uri=str(tmp_path / "feats")),
                               metrics=Metrics(uri=str(tmp_path / "f_m")), embedding_cache_dir=str(cache))
    assert len(calls) == 1 and 0 < calls[0] <= n_texts and (cache / embeddings.CACHE_FILE).exists()

    cb = Model(uri=str(tmp_path / "cb"))
    train_cb.python_func(dataset=ds, vectors=cb, metrics=Metrics(uri=str(tmp_path / "cb_m")),
                         encoder=served.CONTENT_ENCODER, embedding_cache_dir=str(cache))
    assert cb.metadata["encoder"] == served.CONTENT_ENCODER and cb.metadata["dims"] > embeddings.DIM
    assert len(calls) == 1, f"train-cb encoded {calls[1:]} texts the cache already had"

    # the evaluate step's hybrid with the tiny recipe but the served (MiniLM) content encoder
    hybrid = replace(tiny_config(), content=served.CONTENT_ENCODER)
    monkeypatch.setitem(registry.MODEL_FACTORIES, "hybrid", lambda **_: HybridRanker(hybrid, progress=False))
    evaluate.python_func(dataset=ds, report=Dataset(uri=str(tmp_path / "report")),
                         metrics=Metrics(uri=str(tmp_path / "e_m")), html=HTML(uri=str(tmp_path / "e.html")),
                         summary=Markdown(uri=str(tmp_path / "e.md")), models="hybrid,cb,mostpop",
                         compare_champion=False, embedding_cache_dir=str(cache))
    payload = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert {"hybrid", "cb", "mostpop"} <= set(payload["models"])
    assert payload["models"]["hybrid"]["params"]["content"] == served.CONTENT_ENCODER
    assert len(calls) == 1, f"evaluate encoded {calls[1:]} texts the cache already had"

    # evaluate's champion refit (compare_champion reads the registry: the library call it makes, here)
    from smartreco.models.base import TrainData

    champion = hybrid_from_params({**asdict(hybrid), "content": served.CONTENT_ENCODER}, cache)
    champion.fit(TrainData.from_interactions(tiny_data().interactions, tiny_data().items))
    assert champion.params()["content"] == served.CONTENT_ENCODER
    assert len(calls) == 1, f"the champion's refit encoded {calls[1:]} texts the cache already had"
    assert not (tmp_path / "runs" / "cache").exists(), "a step used the runs folder's default cache"
