"""Streaming features and sharded CF training over partitioned parquet (tiny synthetic shop)."""

from __future__ import annotations

import glob

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask
from smartreco.data.synthetic import generate_to_parquet
from smartreco.errors import DataError

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    generate_to_parquet(root, 300, 800, 12_000, seed=3, chunk_rows=4_000, progress=False)
    return root


def _interactions(root) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(str(root / "interactions" / "*.parquet")))])


def test_chunked_stats_equal_a_whole_table_groupby(shop, tmp_path):
    from smartreco.features.streaming import ITEM_STATS, streaming_stats

    items, users = streaming_stats(shop, tmp_path, batch_rows=1_500, progress=False)
    df = _interactions(shop)
    df["pos"] = positive_mask(df)
    df["w"] = df[C.INTERACTION_TYPE].map(C.INTERACTION_WEIGHTS)
    g = df.groupby(C.ITEM_ID).agg(n=("w", "size"), w=("w", "sum"), pos=("pos", "sum"), r=(C.RATING, "mean"),
                                  last=(C.TIMESTAMP, "max"))
    got = items.set_index(C.ITEM_ID).loc[g.index]
    np.testing.assert_array_equal(got["interaction_count"], g["n"])
    np.testing.assert_allclose(got["weighted_count"], g["w"])
    np.testing.assert_array_equal(got["positive_count"], g["pos"])
    np.testing.assert_allclose(got["avg_rating"], g["r"])
    assert (got["last_interaction_ts"] == g["last"]).all()
    # decayed popularity = sum of weights decayed to the last event, half-life 30 days
    t_end = df[C.TIMESTAMP].max()
    age = (t_end - df[C.TIMESTAMP]).dt.total_seconds() / 86_400
    dec = (df["w"] * 0.5 ** (age / 30.0)).groupby(df[C.ITEM_ID]).sum()
    np.testing.assert_allclose(got["popularity_decayed"], dec.loc[g.index], rtol=1e-9)
    assert users["interaction_count"].sum() == len(df)
    assert (tmp_path / ITEM_STATS).exists()


def test_unknown_item_in_interactions_is_a_clear_error(shop, tmp_path):
    import shutil

    from smartreco.features.streaming import streaming_stats

    bad = tmp_path / "bad"
    shutil.copytree(shop, bad)
    part = sorted((bad / "interactions").glob("*.parquet"))[0]
    df = pd.read_parquet(part)
    df.loc[df.index[0], C.ITEM_ID] = "nope"
    df.to_parquet(part, index=False)
    with pytest.raises(DataError, match="interactions.item_id: nope"):
        streaming_stats(bad, progress=False)


@pytest.fixture(scope="module")
def pairs(shop, tmp_path_factory):
    from smartreco.models.cf_streaming import build_pairs

    out = tmp_path_factory.mktemp("pairs")
    build_pairs(shop, out, batch_rows=2_500, progress=False)
    return out


def test_shard_pairs_cover_every_pair_once_per_epoch(shop, pairs):
    from smartreco.models.cf_streaming import ShardPairs, read_pairs_meta

    meta = read_pairs_meta(pairs)
    assert meta["n_pairs"] == 12_000 and len(meta["shards"]) == 6
    ds = ShardPairs(pairs, batch_size=500, seed=1)
    seen = np.concatenate([np.stack([b["user"].numpy(), b["item"].numpy()], 1) for b in ds])
    df = _interactions(shop)
    users = pd.Index(pd.read_parquet(shop / "users")[C.USER_ID])
    items = pd.Index(pd.read_parquet(shop / "items")[C.ITEM_ID])
    want = np.stack([users.get_indexer(df[C.USER_ID]), items.get_indexer(df[C.ITEM_ID])], 1)
    assert len(seen) == len(want) == len(ds) * 500 - (len(ds) * 500 - 12_000)
    key = lambda a: np.sort(a[:, 0].astype(np.int64) * 10_000 + a[:, 1])  # noqa: E731
    np.testing.assert_array_equal(key(seen), key(want))
    half = ShardPairs(pairs, batch_size=500, seed=1, fraction=0.5)
    assert sum(1 for _ in half) == 12


def test_resumed_training_equals_an_uninterrupted_run(pairs, tmp_path):
    import torch

    from smartreco.models import serving_math as S
    from smartreco.models.cf_streaming import StreamingCFConfig, export_factors, train_streaming_mf

    torch.set_num_threads(1)
    cfg = StreamingCFConfig(dim=8, batch_size=1_000, n_negatives=64, lr=0.05)
    whole = train_streaming_mf(pairs, cfg, progress=False)
    ck = tmp_path / "ck"
    part = train_streaming_mf(pairs, cfg, ckpt_dir=ck, ckpt_every_steps=5, max_steps=5, progress=False)
    assert part.cursor.batches == 5 and (ck / "last.ckpt").exists()
    resumed = train_streaming_mf(pairs, cfg, ckpt_dir=ck, progress=False)
    assert resumed.global_step == whole.global_step == 12
    for a, b in zip(whole.factors(), resumed.factors(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # training moved the factors of items it saw, and the export is what serving reads
    assert not np.allclose(whole.factors()[1], part.factors()[1])
    export_factors(resumed, pairs, tmp_path / "cf")
    art = S.CFArtifacts.load(tmp_path / "cf")
    assert art.item_factors.shape == (800, 8) and len(art.user_ids) == 300
    untouched = np.load(pairs / "user_counts.npy") == 0
    assert not art.user_factors[untouched].any()
