"""Feature tables are point-in-time correct and equal a from-scratch recomputation."""

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.data.canonical import canonicalize
from smartreco.features._frame import EVENT_TIMESTAMP, latest_as_of, point_in_time_join
from smartreco.features.build import build_features
from smartreco.features.history import recent_history
from smartreco.features.item import item_feature_history
from smartreco.features.user import USER_FEATURES, add_recency, user_feature_history

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 3000
    items = pd.DataFrame(
        {
            C.ITEM_ID: [f"i{k}" for k in range(60)],
            C.TITLE: [f"t{k}" for k in range(60)],
            C.CATEGORY: [f"c{k % 5}" for k in range(60)],
            C.PRICE: rng.uniform(1, 50, 60),
        }
    )
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s")
    types = rng.choice(list(C.INTERACTION_TYPES), n)
    inter = pd.DataFrame(
        {
            C.USER_ID: [f"u{k}" for k in rng.integers(0, 40, n)],
            C.ITEM_ID: [f"i{k}" for k in rng.integers(0, 60, n)],
            C.INTERACTION_TYPE: types,
            C.TIMESTAMP: ts,
            C.RATING: np.where(types == "rating", rng.integers(1, 11, n) / 2, np.nan),
            C.CHANNEL: rng.choice(list(C.CHANNELS), n),
            C.DEVICE_TYPE: rng.choice(["ios", "android", "desktop"], n),
        }
    )
    inter.loc[10:20, C.TIMESTAMP] = inter.loc[10, C.TIMESTAMP]  # same-second events
    return canonicalize(inter, items)


def _probe(data, rng, k=25):
    rows = data.interactions.sample(n=k, random_state=rng)
    return rows[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]].reset_index(drop=True)


def test_user_features_use_only_earlier_events(data):
    hist = user_feature_history(data.interactions, data.items)
    probe = _probe(data, 1)
    joined = point_in_time_join(probe, hist, C.USER_ID)
    for i, row in probe.iterrows():  # recompute from scratch on events strictly before the example
        before = data.interactions[
            (data.interactions[C.USER_ID] == row[C.USER_ID]) & (data.interactions[C.TIMESTAMP] < row[C.TIMESTAMP])
        ]
        if before.empty:
            assert pd.isna(joined.loc[i, "interaction_count"])
            continue
        fresh = latest_as_of(user_feature_history(before, data.items), C.USER_ID).iloc[0]
        for col in USER_FEATURES:
            assert joined.loc[i, col] == pytest.approx(fresh[col], nan_ok=True), col
        assert joined.loc[i, "interaction_count"] == len(before)


def test_item_features_use_only_earlier_events(data):
    hist = item_feature_history(data.interactions, data.items)
    probe = _probe(data, 2)
    joined = point_in_time_join(probe, hist, C.ITEM_ID)
    for i, row in probe.iterrows():
        before = data.interactions[
            (data.interactions[C.ITEM_ID] == row[C.ITEM_ID]) & (data.interactions[C.TIMESTAMP] < row[C.TIMESTAMP])
        ]
        if before.empty:
            assert pd.isna(joined.loc[i, "interaction_count"])
            continue
        assert joined.loc[i, "interaction_count"] == len(before)
        assert joined.loc[i, "unique_users"] == before[C.USER_ID].nunique()
        age = (before[C.TIMESTAMP].max() - before[C.TIMESTAMP]).dt.total_seconds() / 86400
        assert joined.loc[i, "popularity_decayed"] == pytest.approx(np.power(0.5, age / 30.0).sum())


def test_entropy_counts_and_spend_match_direct_computation(data):
    last = latest_as_of(user_feature_history(data.interactions, data.items), C.USER_ID).set_index(C.USER_ID)
    merged = data.interactions.merge(data.items[[C.ITEM_ID, C.CATEGORY, C.PRICE]], on=C.ITEM_ID)
    for user, events in list(merged.groupby(C.USER_ID))[:5]:
        p = events[C.CATEGORY].value_counts(normalize=True).to_numpy()
        assert last.loc[user, "category_entropy"] == pytest.approx(-(p * np.log(p)).sum())
        assert last.loc[user, "n_purchase"] == (events[C.INTERACTION_TYPE] == "purchase").sum()
        assert last.loc[user, "monetary"] == pytest.approx(
            events.loc[events[C.INTERACTION_TYPE] == "purchase", C.PRICE].sum()
        )
        assert last.loc[user, "n_sessions"] == events[C.SESSION_ID].nunique()
        assert last.loc[user, "avg_rating"] == pytest.approx(events[C.RATING].mean(), nan_ok=True)


def test_recent_history_is_newest_first_and_bounded(data):
    hist = latest_as_of(recent_history(data.interactions, n=5), C.USER_ID).set_index(C.USER_ID)
    for user, events in list(data.interactions.groupby(C.USER_ID))[:5]:
        expected = events.sort_values(C.TIMESTAMP, kind="stable")[C.ITEM_ID].tolist()[::-1][:5]
        assert list(hist.loc[user, "recent_items"]) == expected


def test_rows_are_stamped_after_their_event(data):
    hist = user_feature_history(data.interactions, data.items)
    last = data.interactions.groupby(C.USER_ID)[C.TIMESTAMP].max()
    final = latest_as_of(hist, C.USER_ID).set_index(C.USER_ID)[EVENT_TIMESTAMP]
    assert (final > last.reindex(final.index)).all()
    rec = add_recency(latest_as_of(hist, C.USER_ID), pd.Timestamp("2024-06-01", tz="UTC"))
    assert (rec["recency_days"] > 0).all()


def test_build_writes_tables_with_fake_encoder(data, tmp_path):
    calls = []

    def fake_encode(items, cache_dir=None):
        calls.append(len(items))
        return np.eye(len(items), 384, dtype=np.float32)

    out = build_features(data, tmp_path, encode=fake_encode)
    assert calls == [len(data.items)]
    emb = pd.read_parquet(out.path("item_embeddings"))
    assert len(emb.loc[0, "embedding"]) == 384
    assert set(out.rows) == {"user_stats", "item_stats", "user_history", "item_embeddings"}
