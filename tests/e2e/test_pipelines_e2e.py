"""End to end: `smartreco pipeline compile` writes all three pipelines; the training pipeline runs on
MovieLens through the CLI (kfp.local) to a deployed model, and the batch pipeline serves that model.
The gate's outcome is fixed by its margin parameter, not left to the sample: one run must promote and
deploy, a second into the same registry must not (the champion and the deploy record stay the first's).

The training run uses ``SMARTRECO_E2E_SAMPLE_USERS`` users (default 100) to fit the default test budget;
set it to 0 for the whole of MovieLens (what ``scripts/demo.sh`` and benchmarks/pipeline_runtime.py run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from smartreco.cli import main
from smartreco.images import PIPELINE_IMAGE
from smartreco.paths import project_root

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


#: the gate's margin fixes its outcome whatever the sample gives (metric values lie in [0, 1]):
#: >= 1 promotes any measured candidate, <= -1 none (smartreco.tracking.gate.promotion_decision)
PROMOTE, REJECT = "1.0", "-1.0"


def _train(runs: Path, gate_margin: str, *extra: str) -> dict:
    """One `smartreco pipeline run training --local` into ``runs`` (its own MLflow registry); the run's JSON."""
    import contextlib
    import io

    sample = os.environ.get("SMARTRECO_E2E_SAMPLE_USERS", "100")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["pipeline", "run", "training", "--local", "--runner", "subprocess", "--json",
                   "--sample-users", sample, "--param", "deploy_target=local", "--param", f"gate_margin={gate_margin}",
                   # MiniLM vectors are cached by content hash in the project's runs folder across test runs
                   "--param", f"embedding_cache_dir={project_root() / 'runs' / 'embeddings'}", *extra])
    assert rc == 0, buf.getvalue()[-2000:]
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """One runs folder (MLflow registry, deploy record) shared by the promoted and the rejected run."""
    mp = pytest.MonkeyPatch()
    runs = tmp_path_factory.mktemp("e2e") / "runs"
    runs.mkdir(parents=True)
    mp.setenv("SMARTRECO_RUNS", str(runs))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield runs
    mp.undo()


@pytest.fixture(scope="module")
def trained(runs_dir):
    """A training run whose gate must promote (margin 1): the first version becomes champion and deploys."""
    run = _train(runs_dir, PROMOTE)
    return run, runs_dir, json.loads((runs_dir / "deploy" / "current.json").read_text())


@pytest.fixture(scope="module")
def rejected(trained):
    """A second run into the same registry whose gate must not promote (margin -1); one epoch is enough, the
    gate's outcome does not depend on the model."""
    _, runs, _ = trained
    return _train(runs, REJECT, "--param", "epochs=1"), runs


def _gate(run: dict) -> dict:
    return json.loads(Path(run["artifacts"]["summary/gate"]).read_text())


def _alias(alias: str) -> str:
    from smartreco.tracking import mlflow_tracking as T

    return str(T.configure().get_model_version_by_alias(T.MODEL_NAMES["hybrid"], alias).version)


def test_training_pipeline_promotes_and_deploys_when_the_gate_passes(trained, monkeypatch):
    run, runs, record = trained
    gate = _gate(run)
    monkeypatch.setenv("SMARTRECO_RUNS", str(runs))
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
    from smartreco.tracking import mlflow_tracking as T

    assert gate["promoted"] is False, gate["reasons"]
    assert "deploy/deployment" not in run["artifacts"]  # the dsl.If branch never ran
    assert _alias(T.CHALLENGER) == gate["versions"]["hybrid"] != _alias(T.CHAMPION)
    record = json.loads((runs / "deploy" / "current.json").read_text())
    assert record["model_uris"]["hybrid-a"] != run["artifacts"]["train-hybrid/bundle"]  # still the first run's


def test_batch_pipeline_writes_one_row_per_user_and_rank(trained, tmp_path, monkeypatch):
    run, runs, _ = trained
    monkeypatch.setenv("SMARTRECO_RUNS", str(runs))
    bundle = run["artifacts"]["train-hybrid/bundle"]
    assert main(["pipeline", "run", "batch", "--local", "--runner", "subprocess", "--pipeline-root",
                 str(tmp_path), "--param", f"model_uri={bundle}", "--param", "segment=users:1,42,414",
                 "--param", "n=5", "--param", "exclude_items=318"]) == 0
    files = list(tmp_path.glob("smartreco-batch-*/batch-recommend/recommendations/email_recommendations.parquet"))
    assert len(files) == 1
    df = pd.read_parquet(files[0])
    assert sorted(df["user_id"].unique()) == ["1", "414", "42"] and len(df) == 15
    assert set(df.columns) >= {"user_id", "rank", "item_id", "score", "explanation"}
    assert "318" not in set(df["item_id"]) and df["explanation"].str.len().gt(0).all()
