"""The served recipe: one source of truth for what the pipeline trains and what `smartreco evaluate` scores.

Why a module of its own: the CF factors / epoch cap and the content encoder used to be spelled in four
places (the KFP pipeline's parameters, ``training.train_cf``, :class:`~smartreco.models.hybrid.HybridConfig`
and the evaluation registry's standalone ``cf`` / ``cb``), and they drifted (the pipeline served a
10-epoch CF while the evaluate step's hybrid and the standalone CF used 60). Every one of them now reads
the constants here, and the standalone models the evaluation reports are built by the functions here,
from the same classes and the same encoder the bundle serves.

This module imports nothing heavy at import time (the pipeline definition reads its constants).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from smartreco.models.cf import CFRecommender
    from smartreco.models.content import ContentRecommender
    from smartreco.models.serving_math import CFArtifacts

#: Lightning MF factors (train_cf's ``n_factors``, the pipeline's ``embedding_dim``, HybridConfig.n_factors)
CF_FACTORS = 64
#: epoch cap of the Lightning MF's early-stopped fit (the pipeline's ``epochs``, HybridConfig.cf_max_epochs)
CF_MAX_EPOCHS = 10
#: which interactions the CF trains on: "auto" picks positives-only or all on a validation split
CF_TRAIN_ON = "auto"
#: seed of train_cf's Lightning MF
CF_SEED = 42
#: the content encoder the CB node serves (smartreco.models.content.content_encoder)
CONTENT_ENCODER = "minilm+tfidf+numeric"


def served_cf(**overrides) -> CFRecommender:
    """The standalone CF exactly as ``train_cf`` fits it for the bundle (Lightning MF, served recipe)."""
    from smartreco.models.cf import CFConfig, CFRecommender

    params = {
        "dim": CF_FACTORS,
        "max_epochs": CF_MAX_EPOCHS,
        "train_on": CF_TRAIN_ON,
        "seed": CF_SEED,
        "progress": False,
        **overrides,
    }
    validate = params.pop("validate", True)
    return CFRecommender(CFConfig(**params).check(), validate=validate)


def served_cb(**overrides) -> ContentRecommender:
    """The standalone content model on the CB node's vectors: the served encoder's blocks (MiniLM + TF-IDF +
    numeric, no popularity column: the same ``build_item_vectors(popularity=None)`` call the encoder makes)
    and the recency-weighted profile the CB node builds from a history."""
    from smartreco.models.content import ContentConfig, ContentRecommender

    return ContentRecommender(ContentConfig(**{"numeric_popularity": False, **overrides}))


def cf_artifacts(model: CFRecommender) -> CFArtifacts:
    """A fitted CF model in the layout the CF node serves and ``train_hybrid`` consumes (what ``train_cf``
    writes to disk, kept in memory): the evaluation hands it to the hybrid as the pipeline hands train_cf's
    output to train_hybrid, so the scored hybrid serves the scored standalone CF."""
    import numpy as np
    import pandas as pd

    from smartreco.models.serving_math import CFArtifacts

    users, items, bias = model.factors()
    params = {k: v for k, v in model.params().items() if isinstance(v, (int, float, str, bool, type(None)))}
    meta = {
        "model": "lightning-mf",
        "dim": int(items.shape[1]),
        "factors": int(items.shape[1]),
        "fold_in": "ls",
        "train_on": model.train_on,
        "params": params,
    }
    return CFArtifacts(
        user_ids=pd.Index(np.asarray(model.user_ids).astype(str), dtype=object),
        item_ids=pd.Index(np.asarray(model.item_ids).astype(str), dtype=object),
        user_factors=np.asarray(users, dtype=np.float32),
        item_factors=np.asarray(items, dtype=np.float32),
        item_bias=np.asarray(bias, dtype=np.float32),
        meta=meta,
    )
