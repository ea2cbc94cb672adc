"""The drift pipeline on MovieLens (kfp.local): a shifted copy triggers retraining, an unshifted split does not."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration]


def _run(tmp_path, shift: float):
    from pipelines.drift import drift_pipeline
    from pipelines.runner import run_pipeline

    return run_pipeline(drift_pipeline, {"shift_strength": shift, "retrain_mode": "record",
                                         "training_args": json.dumps({"sample_users": 50})},
                        runner="subprocess", pipeline_root=tmp_path / "root")


def test_shifted_copy_drifts_and_triggers_retraining(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    run = _run(tmp_path, 0.5)
    result = json.loads((run.artifact("drift-check", "result") / "drift.json").read_text())
    assert result["drift_detected"] is True and result["drifted_share"] >= 0.3
    trigger = json.loads(run.artifact("retrain", "trigger").read_text())
    assert trigger["reason"] == "drift" and trigger["arguments"] == {"sample_users": 50}
    assert run.artifact("drift-check", "report").stat().st_size > 10_000  # Evidently HTML


def test_unshifted_split_does_not_trigger(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    run = _run(tmp_path, 0.0)
    result = json.loads((run.artifact("drift-check", "result") / "drift.json").read_text())
    assert result["drift_detected"] is False
    assert run.artifact("retrain", "trigger") is None
