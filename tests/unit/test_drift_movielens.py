"""Drift on MovieLens: a deliberately shifted copy drifts, an unshifted (random) split does not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from smartreco.data.sources import load_source
from smartreco.errors import DataError
from smartreco.monitoring import frames as Fr
from smartreco.monitoring.drift import check_drift, compare_frames
from smartreco.monitoring.shift import shift_data, split_unshifted

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def halves():
    return split_unshifted(load_source("movielens"), seed=7)


def test_unshifted_split_reports_no_drift(halves, tmp_path):
    ref, cur = halves
    res = check_drift(ref, cur, tmp_path)
    assert not res.drift_detected, res.to_markdown()
    assert res.share < res.threshold
    doc = json.loads((tmp_path / "drift.json").read_text())
    assert doc["drift_detected"] is False and doc["methods"] == {"numerical": "ks", "categorical": "chisquare"}
    # every column carries a real p-value in [0, 1]
    for view in doc["views"].values():
        for col in view["columns"].values():
            assert 0.0 <= col["p_value"] <= 1.0 and col["method"] in ("ks", "chisquare")
    assert (tmp_path / "drift_interactions.html").stat().st_size > 10_000
    assert "no drift" in (tmp_path / "drift.md").read_text()


def test_shifted_copy_reports_drift_on_the_shifted_columns(halves, tmp_path):
    ref, cur = halves
    res = check_drift(ref, shift_data(cur, strength=0.5), tmp_path)
    assert res.drift_detected
    drifted = {(v.name, c.column) for v in res.views for c in v.columns if c.drifted}
    for col in ("rating", "hour", "channel", "item_popularity"):
        assert ("interactions", col) in drifted, col
    assert ("features", "mean_rating") in drifted
    assert res.metrics()["drift_detected"] == 1.0


def test_prediction_view_catches_a_score_shift():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"score": rng.normal(0, 1, 3000), "rank": np.tile(np.arange(1, 11), 300),
                        "category": rng.choice(["a", "b", "c"], 3000)})
    same = ref.sample(frac=1.0, random_state=1).reset_index(drop=True)
    moved = ref.assign(score=ref["score"] + 0.5, category=rng.choice(["a", "a", "a", "b"], 3000))
    quiet = compare_frames("predictions", Fr.prediction_frame(ref), Fr.prediction_frame(same))
    loud = compare_frames("predictions", Fr.prediction_frame(ref), Fr.prediction_frame(moved))
    assert not quiet.drifted and quiet.n_drifted == 0
    assert loud.drifted and {c.column for c in loud.columns if c.drifted} == {"score", "category"}


def test_bad_input_is_a_one_line_error(halves):
    ref, _ = halves
    with pytest.raises(DataError, match="threshold"):
        check_drift(ref, ref, threshold=0.0)
    with pytest.raises(DataError, match=r"predictions: missing column\(s\) score"):
        Fr.prediction_frame(pd.DataFrame({"rank": [1]}))
