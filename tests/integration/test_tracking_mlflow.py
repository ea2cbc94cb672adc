"""MLflow on a throwaway SQLite store: pyfunc over the bundle, registry aliases, gate, rollback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from hybrid_tiny import fitted  # noqa: E402

pytestmark = [pytest.mark.integration]


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    return tmp_path


def test_champion_pyfunc_scores_like_the_in_memory_model_and_rollback(store):
    import mlflow

    from smartreco.tracking import mlflow_tracking as T
    from smartreco.training import register

    _, model = fitted()
    bundle = model.save_bundle(store / "bundle")
    evaluation = {"models": {"hybrid": {"ndcg@10": 0.20, "recall@10": 0.2}, "mostpop": {"ndcg@10": 0.10}}}
    first = register(bundle, evaluation, params={"source": "tiny"})
    assert first["registered"]["smartreco-hybrid"]["promote"] is True
    assert first["tracking_uri"].startswith("sqlite:")

    # the registered champion answers exactly like the in-memory runtime
    loaded = mlflow.pyfunc.load_model("models:/smartreco-hybrid@champion")
    w = model.window
    row = 2
    user = str(model.user_ids[row])
    history = [str(model.item_ids[i]) for i in w.histories[row]]
    seen = sorted(str(model.item_ids[i]) for i in w.seen[row])
    got = loaded.predict(pd.DataFrame({"user_id": [user], "history": [json.dumps(history)], "n": [10],
                                       "exclude": [json.dumps(seen)], "channel": ["web"]}))
    want = model.runtime().rank(user, history, None, None, {"channel": "web"}, 10, set(seen))
    assert got["item_id"].tolist() == [r.item_id for r in want]
    np.testing.assert_allclose(got["score"].to_numpy(), [r.score for r in want], rtol=1e-6)
    # the graph nodes get the bundle from the downloaded champion folder (no pickle involved)
    from smartreco.serving.bundle import ModelBundle

    local = mlflow.artifacts.download_artifacts(artifact_uri="models:/smartreco-hybrid@champion")
    assert ModelBundle.load(local).manifest["kind"] == "hybrid"
    cf = mlflow.pyfunc.load_model("models:/smartreco-cf@champion").predict(
        pd.DataFrame({"user_id": [user], "history": ["[]"], "n": [5]}))
    assert len(cf) == 5

    # a worse model stays challenger; a better one is promoted; rollback returns to the previous champion
    only = ("hybrid",)
    worse = register(bundle, {"models": {"hybrid": {"ndcg@10": 0.15}, "mostpop": {"ndcg@10": 0.10}}}, kinds=only)
    assert worse["registered"]["smartreco-hybrid"]["promote"] is False
    client = T.configure()
    assert str(client.get_model_version_by_alias("smartreco-hybrid", "challenger").version) == "2"
    assert str(client.get_model_version_by_alias("smartreco-hybrid", "champion").version) == "1"
    better = register(bundle, {"models": {"hybrid": {"ndcg@10": 0.30}, "mostpop": {"ndcg@10": 0.10}}}, kinds=only)
    assert better["registered"]["smartreco-hybrid"]["promote"] is True
    assert str(client.get_model_version_by_alias("smartreco-hybrid", "champion").version) == "3"
    assert T.rollback("smartreco-hybrid") == "1"
    assert str(client.get_model_version_by_alias("smartreco-hybrid", "champion").version) == "1"
    mv = client.get_model_version("smartreco-hybrid", "1")
    run = client.get_run(mv.run_id)
    assert run.data.metrics["hybrid.ndcg_at_10"] == pytest.approx(0.20)
    # from a source checkout: the version and the checkout's commit (a wheel's source hash names image runs)
    import subprocess

    from smartreco import __version__
    from smartreco.provenance import GIT_COMMIT_TAG, GIT_DIRTY_TAG, SOURCE_HASH_TAG, VERSION_TAG

    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert run.data.tags[VERSION_TAG] == __version__ and SOURCE_HASH_TAG not in run.data.tags
    assert run.data.tags[GIT_COMMIT_TAG] == head.strip() and run.data.tags[GIT_DIRTY_TAG] in ("true", "false")



def test_the_gate_uses_the_same_split_paired_ci_and_the_champion_recipe_is_stored(store):
    """register stores each version's recipe (the champion can be refitted on a new split) and gates on the
    paired CI of challenger - champion from evaluate: an equal retrain within the margin promotes, a
    challenger whose CI reaches below -margin does not, and the version's gate tag names the CI and margin."""
    from smartreco.tracking import mlflow_tracking as T
    from smartreco.training import register

    _, model = fitted()
    bundle = model.save_bundle(store / "bundle")
    only = ("hybrid",)
    base = {"hybrid": {"ndcg@10": 0.20}, "mostpop": {"ndcg@10": 0.10}}
    assert register(bundle, {"models": base}, kinds=only)["registered"]["smartreco-hybrid"]["promote"]
    champion = T.champion_params()
    assert champion["version"] == "1" and champion["params"]["n_factors"] == model.config.n_factors

    def with_ci(low: float, high: float) -> dict:
        ci = {"reference": "champion", "metric": "ndcg@10", "mean_diff": (low + high) / 2, "ci_low": low,
              "ci_high": high, "n_users": 100, "version": "1"}
        return {"models": {**base, "hybrid": {"ndcg@10": 0.199}}, "comparisons": {"champion": ci}}

    equal = register(bundle, with_ci(-0.006, 0.005), kinds=only)["registered"]["smartreco-hybrid"]
    assert equal["promote"] and equal["ci"]["ci_low"] == -0.006 and equal["margin"] == 0.01
    worse = register(bundle, with_ci(-0.03, -0.01), kinds=only, gate_margin=0.01)["registered"]["smartreco-hybrid"]
    assert not worse["promote"] and any("may be worse than the champion" in r for r in worse["reasons"])
    tag = json.loads(T.configure().get_model_version("smartreco-hybrid", "3").tags["smartreco.gate"])
    assert tag["ci"]["ci_low"] == -0.03 and tag["margin"] == 0.01
