"""Email batch: one row per (user, rank) for every user of the segment, with exclusions and diversity."""

from __future__ import annotations

import pandas as pd
import pytest
from hybrid_tiny import fitted, tiny_data

from smartreco.batch import OUTPUT_COLUMNS, recommend_batch, select_segment, write_batch
from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.serving import bundle as B

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    _, model = fitted()
    path = B.save_bundle(tmp_path_factory.mktemp("b") / "bundle", kind="hybrid", **model.bundle_parts())
    return B.ModelBundle.load(path)


def test_every_user_of_the_segment_gets_n_ranked_explained_rows(bundle, tmp_path):
    inter = tiny_data().interactions
    users = select_segment(inter, "min_events:40")
    res = recommend_batch(bundle, inter, segment="min_events:40", n=5)
    df = res.frame
    assert list(df.columns) == list(OUTPUT_COLUMNS)
    assert sorted(df[C.USER_ID].unique()) == users and len(users) < inter[C.USER_ID].nunique()
    assert len(df) == 5 * len(users) and not df.duplicated([C.USER_ID, C.RANK]).any()
    assert all(ranks == [1, 2, 3, 4, 5] for ranks in df.groupby(C.USER_ID)[C.RANK].apply(list))
    assert df["explanation"].str.len().gt(0).all() and df[C.SCORE].notna().all()
    files = write_batch(res, tmp_path)
    back = pd.read_csv(files["csv"], dtype={C.USER_ID: str, C.ITEM_ID: str})
    assert len(back) == len(df) and (back[C.ITEM_ID] == df[C.ITEM_ID]).all()
    assert len(pd.read_parquet(files["parquet"])) == len(df)


def test_seen_global_and_per_user_exclusions_are_respected(bundle):
    inter = tiny_data().interactions
    first = recommend_batch(bundle, inter, segment="users:u0,u1", n=5)
    top_u0 = first.frame[first.frame[C.USER_ID] == "u0"][C.ITEM_ID].tolist()
    glob = first.frame[first.frame[C.USER_ID] == "u1"][C.ITEM_ID].iloc[0]
    pairs = pd.DataFrame({C.USER_ID: ["u0", "u0"], C.ITEM_ID: top_u0[:2]})
    res = recommend_batch(bundle, inter, segment="users:u0,u1", n=5, exclude_items=[glob], exclude_pairs=pairs)
    seen = inter.groupby(C.USER_ID)[C.ITEM_ID].agg(set)
    for user, group in res.frame.groupby(C.USER_ID):
        assert not set(group[C.ITEM_ID]) & seen.get(user, set()), user
        assert glob not in set(group[C.ITEM_ID])
    assert not set(res.frame[res.frame[C.USER_ID] == "u0"][C.ITEM_ID]) & set(top_u0[:2])


def test_category_cap_limits_one_category_per_list(bundle):
    inter = tiny_data().interactions
    res = recommend_batch(bundle, inter, segment="min_events:40", n=6, max_category_share=0.34)
    per_user_max = res.frame.groupby([C.USER_ID, C.CATEGORY]).size().groupby(level=0).max()
    assert (per_user_max <= 2).all()


def test_segments_and_bad_arguments(bundle, tmp_path):
    inter = tiny_data().interactions
    assert select_segment(inter, "users:u3, u1") == ["u1", "u3"]
    assert set(select_segment(inter, "active:7")) < set(select_segment(inter, "all"))
    path = tmp_path / "seg.csv"
    pd.DataFrame({C.USER_ID: ["u2", "u5"]}).to_csv(path, index=False)
    assert select_segment(inter, str(path)) == ["u2", "u5"]
    with pytest.raises(DataError, match="segment"):
        select_segment(inter, "active:soon")
    with pytest.raises(DataError, match="n: must be positive"):
        recommend_batch(bundle, inter, n=0)
