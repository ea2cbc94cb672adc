"""The serving-side CF/CB math imports and runs in the torch-free serving venv."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.serving]


def test_serving_math_runs_without_torch_or_sklearn():
    from smartreco.features import embeddings  # noqa: F401  (OnnxTextEncoder lives here)
    from smartreco.models import onnx_export
    from smartreco.models import serving_math as S

    rng = np.random.default_rng(0)
    items = rng.standard_normal((50, 4)).astype(np.float32)
    bias = rng.standard_normal(50).astype(np.float32)
    index = pd.Index([str(i) for i in range(50)], dtype=object)
    scores = S.cf_scores_for_history(["3", "7", "unknown"], index, items, bias)
    idx, _ = S.topk_blocked(S.fold_in_user(items, np.array([3, 7]))[None, :], items, 5, bias=bias,
                            exclude=[[3, 7]], block_size=8)
    masked = scores.copy()
    masked[[3, 7]] = -np.inf
    assert set(idx[0]) == set(np.argsort(-masked)[:5])
    prof = S.cb_profile_from_history(items, np.array([1, 2]))
    assert np.isclose(np.linalg.norm(prof), 1.0)
    assert hasattr(onnx_export, "OnnxCFScorer")
    assert "torch" not in sys.modules and "sklearn" not in sys.modules
