"""The feedback log runs in the serving venv (Python 3.12, numpy<2, pandas 2.2, no torch/scipy needed):
the executor appends there; this is the same durability check under that interpreter."""

from __future__ import annotations

import sys

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.serving]


def test_feedback_log_round_trip_and_sigkill_in_the_serving_env(tmp_path):
    from smartreco.feedback import FeedbackLog, read_dataset
    from smartreco.feedback.crashcheck import run_trial

    with FeedbackLog(tmp_path / "a") as log:
        log.append_impression({"request_id": "r1", "user_id": "1", "variant": "b", "items": ["5", "6"]})
        assert not log.append(
            {
                "feedback_id": "x",
                "user_id": "1",
                "item_id": "6",
                "interaction_type": "click",
                "request_id": "r1",
            }
        ).duplicate
        assert log.append(
            {"feedback_id": "x", "user_id": "1", "item_id": "6", "interaction_type": "click"}
        ).duplicate
    assert len(read_dataset(tmp_path / "a")) == 3
    heavy = {"torch", "feast", "mlflow", "kfp", "statsmodels"} & set(sys.modules)
    assert not heavy, f"feedback log pulled in {heavy}"
    r = run_trial(tmp_path / "b", n_records=200, kill_after=30)
    assert r["killed"] and r["missing_acked"] == [] and r["acked"] <= r["recovered"] <= r["sent"]
