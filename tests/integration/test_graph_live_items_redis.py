"""New items through two graph replicas on one Redis (``--state redis://``): ``smartreco items add --state``
stores the item once in Redis and both replicas serve it at once, explained as new; adding again is a no-op."""

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import graph_fake_bundle  # noqa: E402
import pandas as pd  # noqa: E402
from graph_fake_bundle import GraphThread  # noqa: E402

from smartreco.cli import main as cli_main  # noqa: E402
from smartreco.testing.redis_server import RedisServer  # noqa: E402

pytestmark = [pytest.mark.redis, pytest.mark.serving, pytest.mark.integration]

NEW = "new-horror-r"
_ORIGINAL_ENV = graph_fake_bundle.node_env


def _env() -> dict[str, str]:
    return {
        **_ORIGINAL_ENV(),
        "SMARTRECO_BUNDLE_LOADER": "live_fake_bundle:load",
        "SMARTRECO_FEATURE_READER": "live_fake_bundle:read_features",
    }


def _ids(graph) -> list[str]:
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "horror-fan"}})
    assert code == 200, body
    return [r["item_id"] for r in body["jsonData"]["recommendations"]]


def test_both_replicas_serve_an_item_added_once_to_redis(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(graph_fake_bundle, "node_env", _env)
    monkeypatch.setenv("SMARTRECO_LIVE_ITEMS_REFRESH_S", "0")
    # `smartreco items add` runs in this process and loads the bundle itself: the fake's loader, as the nodes'
    monkeypatch.setenv("SMARTRECO_BUNDLE_LOADER", _env()["SMARTRECO_BUNDLE_LOADER"])
    with RedisServer(tmp_path / "redis") as redis_server:
        replicas = [
            GraphThread(tmp_path / name, in_process=True, fused=True, cache="local", state=redis_server.url)
            for name in ("a", "b")
        ]
        try:
            assert all(NEW not in _ids(g) for g in replicas)
            source = tmp_path / "new.csv"
            pd.DataFrame({"item_id": [NEW], "title": ["Redis Horror"], "category": ["Horror"]}).to_csv(
                source, index=False
            )
            args = ["items", "add", "--source", str(source), "--bundle", str(tmp_path / "a" / "bundle")]
            assert cli_main([*args, "--state", redis_server.url]) == 0
            assert "1 added, 0 duplicate(s)" in capsys.readouterr().out
            assert all(_ids(g).count(NEW) == 1 for g in replicas)
            assert cli_main([*args, "--state", redis_server.url]) == 0
            assert "0 added, 1 duplicate(s)" in capsys.readouterr().out
            assert all(_ids(g).count(NEW) == 1 for g in replicas)
        finally:
            for g in replicas:
                g.stop()
