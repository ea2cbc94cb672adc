"""ingest -> validate -> build_features -> materialize_features via kfp.local on a MovieLens sample, then
Feast online reads, point-in-time historical joins, a push, and the feast-free HTTP client."""

from pathlib import Path

import pandas as pd
import pytest

from smartreco.data import columns as C

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import kfp.local
    from kfp import dsl

    from components.build_features.component import build_features
    from components.ingest.component import ingest
    from components.materialize_features.component import materialize_features
    from components.validate.component import validate

    root = tmp_path_factory.mktemp("kfp")
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "root"))

    @dsl.pipeline(name="features")
    def features_pipeline(store_dir: str, cache_dir: str) -> str:
        data = ingest(source="movielens", sample_users=12)
        checked = validate(dataset=data.outputs["dataset"])
        # encoder="hash": MiniLM itself is tested with the encoder module and measured by the benchmark
        feats = build_features(dataset=data.outputs["dataset"], embedding_cache_dir=cache_dir, encoder="hash")
        feats.after(checked)
        return materialize_features(features=feats.outputs["features"], store_dir=store_dir).outputs["Output"]

    task = features_pipeline(store_dir=str(root / "feast"), cache_dir=str(root / "cache"))
    return {"repo": Path(task.output), "root": root}


def test_pipeline_writes_store_and_reports(run):
    assert (run["repo"] / "feature_store.yaml").exists() and (run["repo"] / "online_store.db").exists()
    assert list((run["root"] / "root").rglob("report")), "validate wrote no HTML report"


def test_online_features_for_known_user(run):
    from smartreco.features.store import get_store, online_item_features, online_user_features

    store = get_store(run["repo"])
    inter = pd.read_parquet(next((run["root"] / "root").rglob("interactions.parquet")))
    user = inter[C.USER_ID].iloc[0]
    mine = inter[inter[C.USER_ID] == user].sort_values(C.TIMESTAMP, kind="stable")
    row = online_user_features(store, [user, "nobody"])
    assert row.loc[0, "interaction_count"] == len(mine)
    assert list(row.loc[0, "recent_items"])[0] in set(mine.loc[mine[C.TIMESTAMP] == mine[C.TIMESTAMP].max(), C.ITEM_ID])
    assert row.loc[0, "history_length"] == min(20, len(mine))
    assert pd.isna(row.loc[1, "interaction_count"])
    items = online_item_features(store, [mine[C.ITEM_ID].iloc[0]])
    assert len(items.loc[0, "embedding"]) == 384


def test_historical_features_are_point_in_time(run):
    from smartreco.features.store import get_store

    store = get_store(run["repo"])
    inter = pd.read_parquet(next((run["root"] / "root").rglob("interactions.parquet")))
    inter[C.TIMESTAMP] = pd.to_datetime(inter[C.TIMESTAMP], utc=True)
    ent = (
        inter.sample(n=40, random_state=3)[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]]
        .rename(columns={C.TIMESTAMP: "event_timestamp"})
        .reset_index(drop=True)
    )
    got = store.get_historical_features(
        entity_df=ent, features=store.get_feature_service("training_v1"), full_feature_names=True
    ).to_df()
    for _, r in got.iterrows():
        before_u = inter[(inter[C.USER_ID] == r[C.USER_ID]) & (inter[C.TIMESTAMP] < r["event_timestamp"])]
        before_i = inter[(inter[C.ITEM_ID] == r[C.ITEM_ID]) & (inter[C.TIMESTAMP] < r["event_timestamp"])]
        # the example's own event and anything later are never counted
        assert (0 if pd.isna(r["user_stats__interaction_count"]) else r["user_stats__interaction_count"]) == len(
            before_u
        )
        assert (0 if pd.isna(r["item_stats__interaction_count"]) else r["item_stats__interaction_count"]) == len(
            before_i
        )
        if len(before_u):
            assert r["user_stats__last_interaction_ts"] == int(before_u[C.TIMESTAMP].max().timestamp())


def test_push_updates_recent_history_at_once(run):
    from smartreco.features.store import get_store, online_user_features, push_interaction

    store = get_store(run["repo"])
    user = online_user_features(store, ["nobody"])  # warm
    inter = pd.read_parquet(next((run["root"] / "root").rglob("interactions.parquet")))
    user = inter[C.USER_ID].iloc[0]
    new = push_interaction(store, user, "pushed-item")
    assert new[0] == "pushed-item"
    assert list(online_user_features(store, [user]).loc[0, "recent_items"])[0] == "pushed-item"


def test_feast_free_client_against_feature_server(run):
    from smartreco.features.feature_server import feature_server

    with feature_server(run["repo"], timeout_s=60) as client:
        inter = pd.read_parquet(next((run["root"] / "root").rglob("interactions.parquet")))
        user = inter[C.USER_ID].iloc[-1]
        feats = client.get_user_features(user)
        assert feats["known"] and feats["interaction_count"] == (inter[C.USER_ID] == user).sum()
        assert not client.get_user_features("nobody")["known"]
        assert client.push_interaction(user, "via-http")[0] == "via-http"
        assert client.get_user_features(user)["recent_items"][0] == "via-http"
        item = inter[C.ITEM_ID].iloc[0]
        assert len(client.get_item_features([item])[item]["embedding"]) == 384
