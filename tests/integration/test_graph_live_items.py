"""New items served before a retrain, through the local graph: the five-node graph in process and as node
processes (they share the SQLite state file with the command) and the fused arms. ``smartreco items add``
stores a new Horror item; before it the item is never recommended, after it a user whose history is Horror
gets it once, explained as new, and adding the same file again changes nothing."""

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import graph_fake_bundle  # noqa: E402
import pandas as pd  # noqa: E402
from graph_fake_bundle import GraphThread  # noqa: E402

from smartreco.cli import main as cli_main  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

NEW = "new-horror-1"


def _env() -> dict[str, str]:
    env = dict(_ORIGINAL_ENV())
    env["SMARTRECO_BUNDLE_LOADER"] = "live_fake_bundle:load"
    env["SMARTRECO_FEATURE_READER"] = "live_fake_bundle:read_features"
    env["SMARTRECO_LIVE_ITEMS_REFRESH_S"] = "0"  # node processes: see an add at the next request
    return env


_ORIGINAL_ENV = graph_fake_bundle.node_env


@pytest.fixture(
    params=[(True, False), (True, True), (False, False)], ids=["five-nodes", "fused", "five-node-processes"]
)
def graph(request, tmp_path, monkeypatch):
    monkeypatch.setattr(graph_fake_bundle, "node_env", _env)
    monkeypatch.setenv("SMARTRECO_LIVE_ITEMS_REFRESH_S", "0")
    # `smartreco items add` runs in this process and loads the bundle itself: the fake's loader, as the nodes'
    monkeypatch.setenv("SMARTRECO_BUNDLE_LOADER", _env()["SMARTRECO_BUNDLE_LOADER"])
    in_process, fused = request.param
    g = GraphThread(tmp_path, in_process=in_process, cache="local", fused=fused)
    yield g
    g.stop()


def _recs(graph, user: str) -> list[dict]:
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": user, "num_recommendations": 10}})
    assert code == 200, body
    return body["jsonData"]["recommendations"]


def _add(graph, tmp_path, capsys) -> str:
    source = tmp_path / "new_items.csv"
    pd.DataFrame({"item_id": [NEW], "title": ["Brand New Horror"], "category": ["Horror"]}).to_csv(source, index=False)
    code = cli_main(
        [
            "items",
            "add",
            "--source",
            str(source),
            "--bundle",
            str(tmp_path / "bundle"),
            "--graph-state",
            graph.cfg.graph_state,
        ]
    )
    assert code == 0
    return capsys.readouterr().out


def test_new_item_is_served_after_items_add_once_with_a_reason(graph, tmp_path, capsys):
    before = _recs(graph, "horror-fan")
    assert len(before) == 10 and NEW not in {r["item_id"] for r in before}
    assert "1 added, 0 duplicate(s)" in _add(graph, tmp_path, capsys)
    after = _recs(graph, "horror-fan")  # the cached answer is keyed on the live set's version: not reused
    new = [r for r in after if r["item_id"] == NEW]
    assert len(after) == 10 and len(new) == 1
    assert new[0]["title"] == "Brand New Horror" and new[0]["category"] == "Horror"
    assert new[0]["explanation"].startswith("new in Horror, similar to Movie ") and new[0]["new_item"] is True
    assert not any(r.get("new_item") for r in after if r["item_id"] != NEW)
    cats = [r["category"] for r in after]
    assert max(cats.count(c) for c in cats) <= 5  # the category cap holds with the new item in
    assert "0 added, 1 duplicate(s)" in _add(graph, tmp_path, capsys)
    again = _recs(graph, "horror-fan")
    assert [r["item_id"] for r in again].count(NEW) == 1
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": "horror-fan", "exclude_items": [NEW]}})
    assert code == 200 and NEW not in {r["item_id"] for r in body["jsonData"]["recommendations"]}
    # a user with no history has no content profile to match a new item with: popularity as before
    assert NEW not in {r["item_id"] for r in _recs(graph, "never-seen")}
