"""The hybrid serves the models the README names: Lightning CF (train_cf's model) and MiniLM content."""

from __future__ import annotations

import numpy as np
import pytest
from hybrid_tiny import tiny_config, tiny_data

from smartreco.models.base import TrainData
from smartreco.models.content import MINILM_CONTENT, content_encoder
from smartreco.models.hybrid import HybridConfig, HybridRanker

pytestmark = [pytest.mark.unit]


def test_the_served_parts_are_the_defaults():
    cfg = HybridConfig()
    assert cfg.cf_backend == "lightning" and cfg.content == MINILM_CONTENT


def test_a_given_lightning_cf_model_is_the_bundles_cf_and_minilm_the_content(tmp_path):
    from smartreco.models.serving_math import CFArtifacts
    from smartreco.training import train_cf

    data = tiny_data()
    info = train_cf(data, tmp_path / "cf", n_factors=8, epochs=2)
    assert info["model"] == "lightning-mf"
    given = CFArtifacts.load(tmp_path / "cf")
    encode = content_encoder(MINILM_CONTENT)
    model = HybridRanker(tiny_config(cf_backend="lightning", content=MINILM_CONTENT, n_factors=8, cf_max_epochs=3),
                         content_encoder=encode, progress=False, cf_model=given)
    model.fit(TrainData.from_interactions(data.interactions, data.items))
    # the final window serves train_cf's factors, row for row (same ids), not a refit
    assert np.allclose(model.window.side.item_factors, given.item_factors)
    assert np.allclose(model.window.user_factors, given.user_factors)
    parts = model.bundle_parts()
    params = parts["meta"]["params"]
    assert params["cf_backend"] == "lightning" and params["content"] == MINILM_CONTENT
    assert params["cf_model"]["model"] == "lightning-mf" and parts["meta"]["fold_in"] == "ls"
    # MiniLM (384-d) + TF-IDF + numeric blocks, L2-normalised rows
    vecs = parts["arrays"]["cb_item_vectors"]
    assert vecs.shape[1] > 384 and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_a_cf_model_for_other_items_is_refused():
    from smartreco.errors import DataError
    from smartreco.models.serving_math import CFArtifacts

    data = tiny_data()
    import pandas as pd

    other = CFArtifacts(user_ids=pd.Index(["u"]), item_ids=pd.Index(["not-an-item"]),
                        user_factors=np.ones((1, 8), np.float32), item_factors=np.ones((1, 8), np.float32),
                        item_bias=np.zeros(1, np.float32), meta={"train_on": "positives"})
    model = HybridRanker(tiny_config(cf_backend="lightning", n_factors=8, content="hashed"), progress=False,
                         cf_model=other)
    with pytest.raises(DataError, match="shares no item id"):
        model.fit(TrainData.from_interactions(data.interactions, data.items))
