"""The training pipeline with a gate that fails (forced by gate_min_ndcg): a challenger is registered in
MLflow and nothing is deployed. Tiny synthetic data, kfp.local SubprocessRunner."""

from __future__ import annotations

import json

import pytest

from smartreco.data.io import write_folder
from smartreco.data.synthetic import generate_in_memory

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def failed_gate_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("gate")
    mp.setenv("SMARTRECO_RUNS", str(root / "runs"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = write_folder(generate_in_memory(n_users=60, n_items=100, n_interactions=3000, seed=5), root / "data")
    from pipelines.runner import run_pipeline
    from pipelines.training import training_pipeline

    # the gate's branch, not the models, is under test: smoke-run sizes (hashed content, 2 CF epochs, no EASE
    # peer); the default recipe (MiniLM, Lightning epoch cap, EASE) runs end to end in tests/e2e
    args = {
        "source": str(data),
        "gate_min_ndcg": 2.0,
        "deploy_target": "local",
        "embedding_dim": 8,
        "embedding_cache_dir": str(root / "emb"),
        "content_encoder": "hashed",
        "epochs": 2,
        "eval_models": "hybrid,mostpop",
    }
    run = run_pipeline(training_pipeline, args, runner="subprocess")
    yield run, root / "runs"
    mp.undo()


def test_gate_failure_registers_a_challenger_and_deploys_nothing(failed_gate_run, monkeypatch):
    run, runs = failed_gate_run
    gate = json.loads(run.artifact("summary", "gate").read_text())
    assert gate["promoted"] is False
    assert any("gate floor 2.0" in r for r in gate["reasons"])
    assert run.artifact("deploy", "deployment") is None  # the dsl.If branch never ran
    assert not (runs / "deploy" / "current.json").exists()
    monkeypatch.setenv("SMARTRECO_RUNS", str(runs))
    from smartreco.tracking import mlflow_tracking as T

    client = T.configure()
    for kind, name in T.MODEL_NAMES.items():
        mv = client.get_model_version_by_alias(name, T.CHALLENGER)
        assert str(mv.version) == gate["versions"][kind]
        with pytest.raises(Exception):  # noqa: B017 - MLflow raises its own error for a missing alias
            client.get_model_version_by_alias(name, T.CHAMPION)
    summary = run.artifact("summary", "summary").read_text()
    assert "nothing is deployed" in summary and "| hybrid |" in summary


def test_every_training_step_ran_and_left_its_ui_artifacts(failed_gate_run):
    run, _ = failed_gate_run
    for task in (
        "ingest",
        "validate",
        "build-features",
        "materialize-features",
        "train-cf",
        "train-cb",
        "train-hybrid",
        "evaluate",
        "register",
        "summary",
    ):
        assert (run.run_dir / task).is_dir(), task
    assert run.artifact("evaluate", "html").stat().st_size > 0
    # the gate judged the run's recipe (hashed content, 8 factors, 2 epochs), not the default MiniLM one
    recipe = json.loads((run.artifact("evaluate", "report") / "evaluation.json").read_text())["protocol"][
        "hybrid_recipe"]
    assert (recipe["source"], recipe["content"]) == ("bundle manifest", "hashed"), recipe
    assert (recipe["standalone_cf"]["dim"], recipe["standalone_cf"]["max_epochs"]) == (8, 2), recipe
    assert (run.artifact("train-hybrid", "bundle") / "manifest.json").is_file()
