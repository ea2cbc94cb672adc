"""End to end: `smartreco pipeline compile` writes all three pipelines; the training pipeline runs on
MovieLens through the CLI (kfp.local) to a deployed model, and the batch pipeline serves that model.
The gate's outcome is fixed by its margin parameter, not left to the sample: one run must promote and
deploy, a second into the same registry must not (the champion and the deploy record stay the first's).

The promoting run is the session's one subprocess run on the parity configuration (tests/e2e/conftest.py:
100 users, 3 epochs); ``SMARTRECO_E2E_SAMPLE_USERS`` overrides the sample (0: the whole of MovieLens, what
``scripts/demo.sh`` and benchmarks/pipeline_runtime.py run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from e2e_runs import REJECT, train

from smartreco.cli import main
from smartreco.images import PIPELINE_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # a shared 2-core box can be slow


def test_cli_compile_writes_all_three_pipelines_naming_the_project_image(tmp_path, capsys):
    assert main(["pipeline", "compile", "--out", str(tmp_path)]) == 0
    for name in ("training", "drift", "batch"):
        doc = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        images = {e["container"]["image"] for e in doc["deploymentSpec"]["executors"].values()}
        assert images == {PIPELINE_IMAGE}, name
    assert "training:" in capsys.readouterr().out


def test_bad_parameter_is_a_one_line_error(capsys):
    assert main(["pipeline", "run", "training", "--local", "--param", "epochz=3"]) == 1
    assert "epochz: not a parameter of smartreco-training" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(promoted_subprocess_run):
    """A training run whose gate must promote (margin 1): the first version becomes champion and deploys.
    The session's one subprocess run (tests/e2e/conftest.py): test_containers_pipeline compares its metrics."""
    run, runs = promoted_subprocess_run
    return run, runs, json.loads((runs / "deploy" / "current.json").read_text())


@pytest.fixture(scope="module")
def rejected(trained):
    """A second run into the same registry whose gate must not promote (margin -1); one epoch is enough, the
    gate's outcome does not depend on the model."""
    _, runs, _ = trained
    return train(runs, REJECT, "--param", "epochs=1"), runs


def _gate(run: dict) -> dict:
    return json.loads(Path(run["artifacts"]["summary/gate"]).read_text())


def _alias(alias: str) -> str:
    from smartreco.tracking import mlflow_tracking as T

    return str(T.configure().get_model_version_by_alias(T.MODEL_NAMES["hybrid"], alias).version)


def test_training_pipeline_promotes_and_deploys_when_the_gate_passes(trained, monkeypatch):
    run, runs, record = trained
    gate = _gate(run)
    monkeypatch.setenv("SMARTRECO_RUNS", str(runs))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the runs folder's own store
    from smartreco.tracking import mlflow_tracking as T

    assert gate["promoted"] is True, gate["reasons"]
    assert _alias(T.CHAMPION) == _alias(T.CHALLENGER) == gate["versions"]["hybrid"]
    client = T.configure()
    assert client.search_runs([client.get_experiment_by_name(T.EXPERIMENT).experiment_id])  # MLflow shows the run
    assert "deploy/deployment" in run["artifacts"]  # the dsl.If branch ran
    assert record["target"] == "local"
    assert record["model_uris"]["hybrid-a"] == run["artifacts"]["train-hybrid/bundle"]


def test_training_pipeline_keeps_the_champion_and_deploys_nothing_when_the_gate_fails(rejected, monkeypatch):
    run, runs = rejected
    gate = _gate(run)
    monkeypatch.setenv("SMARTRECO_RUNS", str(runs))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the runs folder's own store
    from smartreco.tracking import mlflow_tracking as T

    assert gate["promoted"] is False, gate["reasons"]
    assert "deploy/deployment" not in run["artifacts"]  # the dsl.If branch never ran
    assert _alias(T.CHALLENGER) == gate["versions"]["hybrid"] != _alias(T.CHAMPION)
    record = json.loads((runs / "deploy" / "current.json").read_text())
    assert record["model_uris"]["hybrid-a"] != run["artifacts"]["train-hybrid/bundle"]  # still the first run's


def test_batch_pipeline_writes_one_row_per_user_and_rank(trained, tmp_path, monkeypatch):
    run, runs, _ = trained
    monkeypatch.setenv("SMARTRECO_RUNS", str(runs))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the runs folder's own store
    bundle = run["artifacts"]["train-hybrid/bundle"]
    assert (
        main(
            [
                "pipeline",
                "run",
                "batch",
                "--local",
                "--runner",
                "subprocess",
                "--pipeline-root",
                str(tmp_path),
                "--param",
                f"model_uri={bundle}",
                "--param",
                "segment=users:1,42,414",
                "--param",
                "n=5",
                "--param",
                "exclude_items=318",
            ]
        )
        == 0
    )
    files = list(tmp_path.glob("smartreco-batch-*/batch-recommend/recommendations/email_recommendations.parquet"))
    assert len(files) == 1
    df = pd.read_parquet(files[0])
    assert sorted(df["user_id"].unique()) == ["1", "414", "42"] and len(df) == 15
    assert set(df.columns) >= {"user_id", "rank", "item_id", "score", "explanation"}
    assert "318" not in set(df["item_id"]) and df["explanation"].str.len().gt(0).all()
