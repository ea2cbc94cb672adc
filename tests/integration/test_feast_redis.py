"""The feature repo on the Redis online store: apply, materialize a MovieLens sample, read a known user's
features and recent history back, push. Needs a Redis (`bash scripts/services.sh start`): skipped with the
reason without one, a failure under CI=true (tests/conftest.py)."""

import uuid

import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData

pytestmark = [pytest.mark.integration, pytest.mark.redis]

USERS = ["1", "2", "3", "4", "5", "6", "7", "8"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import redis

    from smartreco.data.movielens import load_movielens
    from smartreco.features.build import build_features, hash_encode
    from smartreco.features.store import apply_repo, default_redis_url, get_store, materialize, prepare_repo

    ml = load_movielens()
    inter = ml.interactions[ml.interactions[C.USER_ID].isin(USERS)].reset_index(drop=True)
    items = ml.items[ml.items[C.ITEM_ID].isin(inter[C.ITEM_ID])].reset_index(drop=True)
    data = CanonicalData(inter, items, ml.users[ml.users[C.USER_ID].isin(USERS)], source="movielens-sample")
    root = tmp_path_factory.mktemp("feast-redis")
    built = build_features(data, root / "features", encode=hash_encode)
    url = default_redis_url()
    # an own project: keys of other runs in the same Redis (newer rows win there) cannot leak in
    project = f"test_{uuid.uuid4().hex[:10]}"
    repo = prepare_repo(built.out_dir, root / "repo", online="redis", redis_url=url, project=project)
    apply_repo(repo)
    materialize(repo)
    st = get_store(repo)
    host, _, port = url.split(",")[0].partition(":")
    client = redis.Redis(host=host, port=int(port))
    yield {"store": st, "inter": inter, "redis": client}
    st.teardown()  # removes this project's keys from Redis


def test_store_is_really_redis(store):
    assert store["store"].config.online_store.type == "redis"
    project = store["store"].project.encode()
    keys = list(store["redis"].scan_iter(match=b"*" + project + b"*", count=1000))
    assert len(keys) >= len(USERS), "materialize wrote nothing to Redis"


def test_known_user_features_and_recent_history(store):
    from smartreco.features.store import online_user_features

    inter = store["inter"]
    user = "1"
    mine = inter[inter[C.USER_ID] == user].sort_values(C.TIMESTAMP, kind="stable")
    row = online_user_features(store["store"], [user, "nobody"])
    assert row.loc[0, "interaction_count"] == len(mine)
    assert row.loc[0, "last_interaction_ts"] == int(mine[C.TIMESTAMP].max().timestamp())
    recent = list(row.loc[0, "recent_items"])
    assert len(recent) == row.loc[0, "history_length"] == min(20, len(mine))
    newest = set(mine.loc[mine[C.TIMESTAMP] == mine[C.TIMESTAMP].max(), C.ITEM_ID])
    assert recent[0] in newest
    # newest first: the list is the user's last 20 items (as a set; events sharing a timestamp have no order)
    assert set(recent) <= set(mine[C.ITEM_ID].iloc[-40:])
    assert pd.isna(row.loc[1, "interaction_count"])


def test_item_features(store):
    from smartreco.features.store import online_item_features

    item = store["inter"][C.ITEM_ID].iloc[0]
    got = online_item_features(store["store"], [item])
    assert got.loc[0, "unique_users"] == store["inter"].loc[store["inter"][C.ITEM_ID] == item, C.USER_ID].nunique()
    assert len(got.loc[0, "embedding"]) == 384


def test_push_prepends_to_history_in_redis(store):
    from smartreco.features.store import online_user_dict, push_interaction

    before = online_user_dict(store["store"], ["2"])["recent_items"][0]
    new = push_interaction(store["store"], "2", "pushed-to-redis", to_offline=False)
    assert new[0] == "pushed-to-redis" and new[1:] == list(before)[: len(new) - 1]
    assert online_user_dict(store["store"], ["2"])["recent_items"][0][0] == "pushed-to-redis"
