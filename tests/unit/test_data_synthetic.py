"""Synthetic generator: deterministic, canonical, streamed to parquet, and carrying learnable structure."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from smartreco.data import columns as C
from smartreco.data.canonical import canonicalize, positive_mask
from smartreco.data.io import load_folder
from smartreco.data.sources import load_source
from smartreco.data.synthetic import (
    INTERACTION_SCHEMA,
    ITEM_SCHEMA,
    PERIOD_START,
    USER_SCHEMA,
    generate_in_memory,
    generate_to_parquet,
)
from smartreco.errors import DataError

pytestmark = [pytest.mark.unit]

SIZES = {"n_users": 400, "n_items": 1500, "n_interactions": 30_000, "seed": 11}


@pytest.fixture(scope="module")
def data():
    return generate_in_memory(**SIZES)


def _index(ids: pd.Series) -> np.ndarray:
    return ids.str[1:].astype(np.int64).to_numpy()  # "u17" -> 17: row of the ground-truth arrays


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sizes_ids_and_canonical_dtypes(data) -> None:
    inter, items, users = data.interactions, data.items, data.users
    assert (len(users), len(items), len(inter)) == (400, 1500, 30_000)
    assert inter[C.INTERACTION_ID].is_unique and items[C.ITEM_ID].is_unique and users[C.USER_ID].is_unique
    assert inter[C.ITEM_ID].isin(items[C.ITEM_ID]).all() and inter[C.USER_ID].isin(users[C.USER_ID]).all()
    assert str(inter[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert str(items[C.CREATED_DATE].dtype) == "datetime64[ns, UTC]"
    assert str(users[C.REGISTRATION_DATE].dtype) == "datetime64[ns, UTC]"
    assert set(inter[C.INTERACTION_TYPE]) == set(C.INTERACTION_TYPES)
    assert set(inter[C.CHANNEL]) == set(C.CHANNELS)
    assert items[C.TAGS].map(lambda t: isinstance(t, list) and len(t) >= 2 and all(map(str.isalpha, t))).all()
    assert items[C.PRICE].gt(0).all() and items[C.TITLE].str.len().gt(5).all()
    assert users[C.SUBSCRIPTION_TIER].isin(["free", "basic", "premium"]).all()
    # canonicalize() is idempotent on the output: it already satisfies the contract
    again = canonicalize(inter, items, users)
    pd.testing.assert_frame_equal(again.interactions, inter)


def test_realistic_shapes(data) -> None:
    inter, users = data.interactions, data.users
    shares = inter[C.INTERACTION_TYPE].value_counts(normalize=True)
    assert shares["view"] > shares["click"] > shares["add_to_cart"] > shares["purchase"] > shares["share"]
    assert 0.05 < positive_mask(inter).mean() < 0.4
    ratings = inter[C.RATING].dropna()
    assert (inter[C.RATING].notna() == inter[C.INTERACTION_TYPE].eq("rating")).all()
    assert ratings.between(0.5, 5.0).all() and ratings.mul(2).mod(1).eq(0).all()  # half stars
    # power laws: the top 10% of items and of users take about a third of all events (uniform: 10%)
    item_counts = inter[C.ITEM_ID].value_counts()
    assert item_counts.head(150).sum() / len(inter) > 0.25
    user_counts = inter[C.USER_ID].value_counts()
    assert user_counts.head(40).sum() / len(inter) > 0.25
    # sessions are bursts of one user on one channel, minutes long
    by_session = inter.groupby(C.SESSION_ID)
    assert by_session[C.USER_ID].nunique().eq(1).all() and by_session[C.CHANNEL].nunique().eq(1).all()
    span = (by_session[C.TIMESTAMP].max() - by_session[C.TIMESTAMP].min()).dt.total_seconds()
    assert span.median() < 600 and 2 < len(inter) / len(by_session) < 8
    # nobody acts before registering; everything falls in the simulated year
    reg = inter[C.USER_ID].map(users.set_index(C.USER_ID)[C.REGISTRATION_DATE])
    assert (inter[C.TIMESTAMP] >= reg).all()
    assert inter[C.TIMESTAMP].min() >= PERIOD_START
    assert data.items[C.CREATED_DATE].max() <= PERIOD_START


def test_latent_tastes_are_learnable(data) -> None:
    meta, inter = data.meta, data.interactions
    u, i = _index(inter[C.USER_ID]), _index(inter[C.ITEM_ID])
    prefs, item_cat = meta["user_category_prefs"], meta["item_category_index"]
    n_cat = len(meta["categories"])
    assert (np.asarray(meta["categories"])[item_cat] == data.items[C.CATEGORY].to_numpy()).all()
    # a user's events concentrate in the category they prefer most, far above chance
    in_top = (item_cat[i] == prefs.argmax(axis=1)[u]).mean()
    assert in_top > 5 / n_cat
    # interacted items lie closer to the user's latent vector than random items
    uf, itf = meta["user_factors"], meta["item_factors"]
    rng = np.random.default_rng(0)
    affinity = np.einsum("nd,nd->n", uf[u], itf[i])
    random_affinity = np.einsum("nd,nd->n", uf[u], itf[rng.integers(0, len(itf), len(i))])
    assert affinity.mean() > random_affinity.mean() + 0.5
    # explicit ratings and purchases follow affinity
    rated = inter[C.RATING].notna().to_numpy()
    assert np.corrcoef(affinity[rated], inter[C.RATING].to_numpy()[rated])[0, 1] > 0.3
    bought = inter[C.INTERACTION_TYPE].eq("purchase").to_numpy()
    assert affinity[bought].mean() > affinity[inter[C.INTERACTION_TYPE].eq("view").to_numpy()].mean()


def test_text_carries_category_signal(data) -> None:
    """A vote of category-specific words (the category name itself removed) recovers the category."""
    items = data.items
    words = (items[C.TITLE] + " " + items[C.DESCRIPTION]).str.lower().str.replace(r"[^a-z ]", " ", regex=True)
    names = set(items[C.CATEGORY])
    tokens = words.str.split().map(lambda ws: [w for w in ws if w not in names])
    train = np.arange(len(items)) % 2 == 0
    exploded = pd.DataFrame({"w": tokens[train], "c": items.loc[train, C.CATEGORY]}).explode("w")
    # words whose training items are mostly in one category vote for it; generic words abstain
    share = exploded.groupby("w")["c"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    word_cat = exploded.groupby("w")["c"].agg(lambda s: s.value_counts().index[0])[share > 0.5]
    test = pd.DataFrame({"w": tokens[~train], "c": items.loc[~train, C.CATEGORY]}).explode("w").reset_index()
    test["p"] = test["w"].map(word_cat)
    predicted = test.dropna().groupby("index")["p"].agg(lambda s: s.value_counts().index[0])
    accuracy = (predicted == items.loc[predicted.index, C.CATEGORY]).mean()
    assert accuracy > 0.8 > 3 / items[C.CATEGORY].nunique()


def test_parquet_is_deterministic_streamed_and_matches_memory(tmp_path: Path) -> None:
    sizes = {"n_users": 120, "n_items": 400, "n_interactions": 5_000, "seed": 3}
    a = generate_to_parquet(tmp_path / "a", **sizes, chunk_rows=1_500, progress=False)
    generate_to_parquet(tmp_path / "b", **sizes, chunk_rows=1_500, progress=False)
    generate_to_parquet(tmp_path / "c", **{**sizes, "seed": 4}, chunk_rows=1_500, progress=False)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")  # byte-identical
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")
    parts = sorted(p.name for p in (tmp_path / "a" / "interactions").iterdir())
    assert parts == [f"part-{k:05d}.parquet" for k in range(4)]
    assert len(list((tmp_path / "a" / "items").iterdir())) == 1
    schemas = {"items": ITEM_SCHEMA, "users": USER_SCHEMA, "interactions": INTERACTION_SCHEMA}
    for name, schema in schemas.items():
        assert pq.read_schema(tmp_path / "a" / name / "part-00000.parquet").remove_metadata().equals(schema)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["tables"]["interactions"]["rows"] == 5_000
    assert manifest["tables"] == {k: v for k, v in a["tables"].items()}
    loaded = load_folder(tmp_path / "a")
    memory = generate_in_memory(**sizes, chunk_rows=1_500)
    for name in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(memory, name))
    assert loaded.interactions[C.TIMESTAMP].is_monotonic_increasing  # parts cover successive time windows


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    sizes = {"n_users": 10, "n_items": 30, "n_interactions": 50}
    generate_to_parquet(tmp_path, **sizes, progress=False)
    with pytest.raises(DataError, match="already holds a dataset"):
        generate_to_parquet(tmp_path, **sizes, progress=False)
    sizes["n_interactions"] = 70
    manifest = generate_to_parquet(tmp_path, **sizes, progress=False, overwrite=True)
    assert manifest["tables"]["interactions"]["rows"] == 70
    assert load_folder(tmp_path).describe()["interactions"] == 70


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "n_users: must be a positive integer"),
        ({"n_items": -5}, "n_items: must be a positive integer"),
        ({"n_interactions": 2.5}, "n_interactions: must be a positive integer"),
        ({"seed": -1}, "seed: must be a non-negative integer"),
        ({"n_items": 30, "n_categories": 10, "n_subcategories": 6}, "n_items: 30 is fewer than"),
        ({"chunk_rows": 0}, "chunk_rows: must be a positive integer"),
    ],
)
def test_bad_sizes_are_one_line_errors(kwargs: dict, message: str) -> None:
    args = {"n_users": 10, "n_items": 100, "n_interactions": 100, "seed": 1, **kwargs}
    with pytest.raises(DataError, match=message):
        generate_in_memory(**args)


def test_load_source_synthetic_uses_the_generator() -> None:
    data = load_source("synthetic", n_users=30, n_items=80, n_interactions=300)
    assert data.source == "synthetic" and len(data.interactions) == 300
    assert data.meta["user_factors"].shape == (30, data.meta["config"]["latent_dim"])
