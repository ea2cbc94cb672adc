"""prepare_repo renders a repo Feast reads with bounded materialization and the chosen online store; the
feature-service cache and the Redis probe behave (no Redis or apply needed)."""

import socket
from types import SimpleNamespace

import pytest

from smartreco.errors import DataError
from smartreco.features import store as S
from smartreco.features.build import TABLES

pytestmark = [pytest.mark.unit]


@pytest.fixture()
def feature_dir(tmp_path):
    d = tmp_path / "features"
    d.mkdir()
    for t in TABLES:
        (d / f"{t}.parquet").write_bytes(b"")
    return d


def _config(repo):
    from feast.repo_config import load_repo_config

    return load_repo_config(repo, repo / "feature_store.yaml")


def test_materialization_is_batched_and_latest_only(feature_dir, tmp_path):
    cfg = _config(S.prepare_repo(feature_dir, tmp_path / "repo", online_write_batch_size=5000))
    assert cfg.materialization_config.online_write_batch_size == 5000
    assert cfg.materialization_config.pull_latest_features is True
    assert cfg.online_store.type == "sqlite" and cfg.online_store.path.startswith(str(tmp_path))


def test_redis_url_from_env_then_state_file(feature_dir, tmp_path, monkeypatch):
    state = tmp_path / "redis.url"
    state.write_text("127.0.0.1:6444\n")
    monkeypatch.setenv("SMARTRECO_SERVICES_DIR", str(tmp_path))
    monkeypatch.delenv("SMARTRECO_REDIS_URL", raising=False)
    cfg = _config(S.prepare_repo(feature_dir, tmp_path / "a", online="redis"))
    assert cfg.online_store.type == "redis" and cfg.online_store.connection_string == "127.0.0.1:6444"
    monkeypatch.setenv("SMARTRECO_REDIS_URL", "10.0.0.5:7000,db=2")
    cfg = _config(S.prepare_repo(feature_dir, tmp_path / "b", online="redis", project="other"))
    assert cfg.online_store.connection_string == "10.0.0.5:7000,db=2" and cfg.project == "other"
    state.unlink()
    monkeypatch.delenv("SMARTRECO_REDIS_URL")
    assert S.default_redis_url() == f"127.0.0.1:{S.DEFAULT_REDIS_PORT}"


def test_unknown_online_store_is_a_clear_error(feature_dir, tmp_path):
    with pytest.raises(DataError, match="online store 'mongo'"):
        S.prepare_repo(feature_dir, tmp_path / "repo", online="mongo")


def test_redis_probe_names_the_url_when_nothing_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        assert "127.0.0.1:" + str(port) in S.redis_problem(f"127.0.0.1:{port}")


class _FakeStore:
    def __init__(self):
        self.registry = SimpleNamespace(cached_registry_proto_created=1)
        self.calls = 0

    def get_feature_service(self, name, allow_cache=False):
        assert allow_cache, "a registry re-read on every lookup is what made reads slow"
        self.calls += 1
        return (name, self.calls)


def test_feature_service_is_reused_until_the_registry_refreshes():
    st = _FakeStore()
    first = S._service(st, "serving_user_v1")
    assert S._service(st, "serving_user_v1") is first and st.calls == 1
    st.registry.cached_registry_proto_created = 2  # registry reloaded (TTL or apply)
    assert S._service(st, "serving_user_v1") != first and st.calls == 2
