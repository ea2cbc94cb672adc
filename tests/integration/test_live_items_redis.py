"""Live items (``smartreco items add``) in Redis: what one replica stores every replica reads, adding twice
stores once, and expiring works across bundle versions; the same contract as the SQLite store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.serving.live_items import RedisLiveStore, add_items, live_rows, open_live_store, validate_rows
from smartreco.testing.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.integration]


@pytest.fixture()
def redis_server(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


def test_replicas_share_live_items_idempotently(redis_server):
    cli_side, replica = open_live_store(redis_server.url), RedisLiveStore(redis_server.url)
    assert isinstance(cli_side, RedisLiveStore) and replica.version() == 0
    rows = validate_rows(pd.DataFrame({C.ITEM_ID: ["n1", "n2", "old"], C.TITLE: ["a", "b", "c"], C.CATEGORY: "x"}))
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    first = add_items(cli_side, "v1", rows, vectors, in_bundle={"old"})
    assert first.added == ["n1", "n2"] and first.duplicates == ["old"]
    again = add_items(cli_side, "v1", rows, vectors, in_bundle={"old"})
    assert again.added == [] and sorted(again.duplicates) == ["n1", "n2", "old"]
    assert replica.version() == 1
    items = replica.items("v1")
    assert [it.item_id for it in items] == ["n1", "n2"] and items[0].title == "a"
    np.testing.assert_array_equal(items[1].vector, vectors[1])
    add_items(cli_side, "v2", rows.iloc[:1], vectors[:1], in_bundle=set())  # the other arm's bundle
    assert replica.known("v2", ["n1", "n2"]) == {"n1"} and replica.all_ids() == {"n1", "n2"}
    assert replica.versions() == ["v1", "v2"] and sorted(live_rows(replica)[C.ITEM_ID]) == ["n1", "n2"]
    assert replica.expire(["n1"]) == 2  # gone for both bundle versions
    assert cli_side.all_ids() == {"n2"} and replica.version() == 3
