"""model-fetch against a real (SQLite) MLflow registry: aliases fetched at their exact versions, recorded, and the
version URIs a deploy writes resolve to those folders in the nodes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from hybrid_tiny import fitted  # noqa: E402

pytestmark = [pytest.mark.integration]


def test_model_fetch_records_versions_the_nodes_resolve(tmp_path, monkeypatch, capsys):
    from smartreco.serving.bundle import ModelBundle
    from smartreco.serving.model_uri import ModelUriError, read_fetch_record, resolve_local
    from smartreco.tracking import model_fetch
    from smartreco.training import register

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    _, model = fitted()
    bundle = model.save_bundle(tmp_path / "bundle")
    only = ("hybrid",)
    assert register(bundle, {"models": {"hybrid": {"ndcg@10": 0.2}, "mostpop": {"ndcg@10": 0.1}}}, kinds=only)[
        "registered"
    ]["smartreco-hybrid"]["promote"]
    # version 2 is worse: challenger only
    register(bundle, {"models": {"hybrid": {"ndcg@10": 0.05}, "mostpop": {"ndcg@10": 0.1}}}, kinds=only)
    mapping = {
        "models:/smartreco-hybrid@champion": str(tmp_path / "models" / "hybrid-champion"),
        "models:/smartreco-hybrid@challenger": str(tmp_path / "models" / "hybrid-challenger"),
        "/a/local/path": "/elsewhere",
    }
    monkeypatch.setenv("SMARTRECO_MODEL_URIS", json.dumps(mapping))

    assert model_fetch.main([]) == 0
    out = capsys.readouterr().out
    assert "models:/smartreco-hybrid@champion (version 1)" in out
    assert "models:/smartreco-hybrid@challenger (version 2)" in out
    champion = Path(mapping["models:/smartreco-hybrid@champion"])
    assert read_fetch_record(champion)["version"] == "1"
    assert resolve_local("models:/smartreco-hybrid/1") == champion
    assert ModelBundle.load(resolve_local("models:/smartreco-hybrid/2")).manifest["kind"] == "hybrid"
    with pytest.raises(ModelUriError, match="was not fetched into this pod"):
        resolve_local("models:/smartreco-hybrid/3")


def test_model_fetch_names_a_missing_alias(tmp_path, monkeypatch, capsys):
    from smartreco.tracking import model_fetch

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SMARTRECO_MODEL_URIS", json.dumps({"models:/nope@champion": str(tmp_path / "x")}))
    assert model_fetch.main([]) == 1
    assert "models:/nope@champion: the registry has no such alias" in capsys.readouterr().err


def test_only_the_canary_alias_is_fetched_when_asked(tmp_path):
    from smartreco.tracking import model_fetch

    class Client:
        asked: list = []

        def get_model_version_by_alias(self, name, alias):
            raise AssertionError("not asked for the champion")

    got = model_fetch.fetch_all({"models:/m@champion": str(tmp_path / "c")}, alias="challenger", client=Client())
    assert got == []
