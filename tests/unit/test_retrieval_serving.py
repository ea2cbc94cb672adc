"""The retrieval package imports and answers in the serving venv (numpy<2, faiss-cpu, no torch)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.serving]


def test_exact_and_ann_answer_without_torch(tmp_path):
    from smartreco.retrieval import ExactIndex, build_index, load_index, recall_at_k

    rng = np.random.default_rng(3)
    items = rng.normal(size=(3000, 8)).astype(np.float32)
    users = rng.normal(size=(30, 8)).astype(np.float32)
    exact, _ = ExactIndex(items).search(users, 10)
    ann = build_index(items, kind="ivf_flat", nprobe=32)
    ann.save(tmp_path / "ix")
    got, _ = load_index(tmp_path / "ix").search(users, 10)
    assert recall_at_k(got, exact) >= 0.9
    assert "torch" not in sys.modules
