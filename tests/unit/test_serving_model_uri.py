"""``resolve_local``: mapped URIs, and version URIs resolved through model-fetch's records."""

from __future__ import annotations

import json

import pytest

from smartreco.serving.model_uri import ModelUriError, fetch_record_path, resolve_local, write_fetch_record


@pytest.fixture()
def fetched(tmp_path, monkeypatch):
    """Two alias folders as model-fetch leaves them: champion = version 7, challenger = version 8."""
    champion, challenger = tmp_path / "hybrid-champion", tmp_path / "hybrid-challenger"
    for folder in (champion, challenger):
        folder.mkdir()
    write_fetch_record(champion, "models:/smartreco-hybrid@champion", "smartreco-hybrid", "7")
    write_fetch_record(challenger, "models:/smartreco-hybrid@challenger", "smartreco-hybrid", "8")
    mapping = {
        "models:/smartreco-hybrid@champion": str(champion),
        "models:/smartreco-hybrid@challenger": str(challenger),
    }
    monkeypatch.setenv("SMARTRECO_MODEL_URIS", json.dumps(mapping))
    return champion, challenger


def test_the_record_sits_beside_the_folder_not_in_it(tmp_path):
    folder = tmp_path / "cf-champion"
    folder.mkdir()
    write_fetch_record(folder, "models:/smartreco-cf@champion", "smartreco-cf", "3")
    assert fetch_record_path(folder).parent == tmp_path
    assert list(folder.iterdir()) == []


def test_a_version_uri_resolves_to_the_folder_fetched_for_that_version(fetched):
    champion, challenger = fetched
    assert resolve_local("models:/smartreco-hybrid@champion") == champion
    assert resolve_local("models:/smartreco-hybrid/7") == champion
    assert resolve_local("models:/smartreco-hybrid/8") == challenger


def test_a_version_model_fetch_did_not_fetch_is_a_clear_error(fetched):
    with pytest.raises(
        ModelUriError,
        match=r"models:/smartreco-hybrid/9 was not fetched into this pod .*"
        r"@champion was version 7",
    ):
        resolve_local("models:/smartreco-hybrid/9")


def test_a_version_of_a_model_nothing_fetched_still_needs_mlflow(fetched, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):  # the serving venv: no MLflow
        if name == "mlflow":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(ModelUriError, match="needs MLflow to resolve"):
        resolve_local("models:/smartreco-cf/2")
