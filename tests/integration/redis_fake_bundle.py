"""The test graph's fake bundle with category-clustered item vectors (as learned embeddings are), loadable
by node processes through ``SMARTRECO_BUNDLE_LOADER=redis_fake_bundle:load`` (tests only)."""

from __future__ import annotations

import numpy as np
from graph_fake_bundle import CATEGORIES, FakeBundle


def load(path):
    bundle = FakeBundle.load(path)
    rng = np.random.default_rng(1)
    eye = np.eye(8)
    bundle.item_vec = {i: eye[CATEGORIES.index(bundle.category[i])] + rng.normal(0, 0.05, 8) for i in bundle.items}
    return bundle
