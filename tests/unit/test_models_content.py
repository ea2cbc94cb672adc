"""Content model: blocked top-k equals brute force, profiles follow taste, export round-trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.models import serving_math as S
from smartreco.models.base import TrainData
from smartreco.models.content import ContentConfig, ContentRecommender

pytestmark = [pytest.mark.unit]

GENRES = ["space", "romance", "horror", "cooking"]
N_ITEMS = 80


def catalogue(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    genre = np.arange(N_ITEMS) % len(GENRES)
    return pd.DataFrame({
        C.ITEM_ID: [f"i{i}" for i in range(N_ITEMS)],
        C.TITLE: [f"{GENRES[g]} story number {i}" for i, g in enumerate(genre)],
        C.CATEGORY: [GENRES[g] for g in genre],
        C.TAGS: [[GENRES[g], f"{GENRES[g]}-fans"] for g in genre],
        C.PRICE: rng.uniform(1, 50, N_ITEMS),
        C.CREATED_DATE: pd.to_datetime(rng.integers(1990, 2020, N_ITEMS).astype(str), format="%Y", utc=True),
    })


def genre_embed(items: pd.DataFrame) -> np.ndarray:
    """Stand-in for MiniLM: one-hot genre plus noise (the real encoder is tested in test_embeddings)."""
    rng = np.random.default_rng(1)
    onehot = (items[C.CATEGORY].to_numpy()[:, None] == np.array(GENRES)[None, :]).astype(np.float32)
    return np.hstack([onehot, 0.1 * rng.standard_normal((len(items), 12)).astype(np.float32)])


def interactions(items: pd.DataFrame) -> pd.DataFrame:
    """User u likes genre u % 4: 6 liked items of that genre, 2 disliked from others."""
    rows = []
    for u in range(20):
        g = u % len(GENRES)
        mine = items.index[items[C.CATEGORY] == GENRES[g]][:6]
        other = items.index[items[C.CATEGORY] != GENRES[g]][u:u + 2]
        rows += [(f"u{u}", items.loc[i, C.ITEM_ID], 5.0) for i in mine]
        rows += [(f"u{u}", items.loc[i, C.ITEM_ID], 1.0) for i in other]
    df = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.RATING])
    df[C.INTERACTION_TYPE] = "rating"
    df[C.TIMESTAMP] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(len(df)), unit="h")
    return df


@pytest.fixture(scope="module")
def fitted():
    items = catalogue()
    model = ContentRecommender(ContentConfig(svd_dim=8, block_size=7), embed_fn=genre_embed)
    model.fit(TrainData.from_interactions(interactions(items), items))
    return model, items


def test_topk_blocked_equals_brute_force():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((103, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    bias = rng.standard_normal(103).astype(np.float32)
    exclude = [[0, 1, 2], [], [102], list(range(50)), [7]]
    idx, val = S.topk_blocked(queries, items, 10, bias=bias, exclude=exclude, block_size=16)
    brute = queries @ items.T + bias
    for r, ex in enumerate(exclude):
        brute[r, ex] = -np.inf
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(val, np.take_along_axis(brute, expected, axis=1), rtol=1e-5, atol=1e-5)


def test_topk_blocked_pads_when_too_few_items():
    items = np.eye(3, dtype=np.float32)
    idx, val = S.topk_blocked(np.ones((1, 3), np.float32), items, 5, exclude=[[1]], block_size=2)
    assert list(idx[0][:2]) in ([0, 2], [2, 0]) and (idx[0][2:] == -1).all() and np.isinf(val[0][2:]).all()


def test_item_vectors_are_normalised_and_blocks_recorded(fitted):
    model, _ = fitted
    assert model.item_vectors.shape[0] == N_ITEMS
    np.testing.assert_allclose(np.linalg.norm(model.item_vectors, axis=1), 1.0, atol=1e-5)
    assert set(model.blocks) == {"text", "tfidf", "numeric"} and model.blocks["numeric"] == 3


def test_similar_items_share_the_genre(fitted):
    model, items = fitted
    sim = model.similar_items("i0", k=5)
    assert len(sim) == 5 and "i0" not in set(sim[C.ITEM_ID])
    genre_of = items.set_index(C.ITEM_ID)[C.CATEGORY]
    assert (genre_of[sim[C.ITEM_ID]] == genre_of["i0"]).all()
    with pytest.raises(DataError, match="item_id"):
        model.similar_items("nope")


def test_user_scores_rank_their_genre_first(fitted):
    model, items = fitted
    scores = model.score_users(np.arange(len(model.user_ids)))
    assert scores.shape == (len(model.user_ids), N_ITEMS)
    genre_of = items[C.CATEGORY].to_numpy()
    for row, uid in enumerate(model.user_ids):
        top = np.argsort(-scores[row])[:10]
        assert (genre_of[top] == GENRES[int(uid[1:]) % len(GENRES)]).mean() >= 0.9


def test_recommend_from_history_excludes_seen(fitted):
    model, items = fitted
    rec = model.recommend(["i1", "i5", "i9"], k=6, exclude=["i13"])  # genre "romance"
    assert not {"i1", "i5", "i9", "i13"} & set(rec[C.ITEM_ID])
    genre_of = items.set_index(C.ITEM_ID)[C.CATEGORY]
    assert (genre_of[rec[C.ITEM_ID]] == "romance").all()
    assert model.recommend(["unknown"], k=5).empty


def test_export_round_trip(fitted, tmp_path):
    model, _ = fitted
    ids, vecs, meta = S.load_item_vectors(model.export(tmp_path / "cb"))
    assert list(ids) == list(model.item_ids) and meta["n_items"] == N_ITEMS
    np.testing.assert_array_equal(vecs, model.item_vectors)
    prof = S.cb_profile_from_history(vecs, S.history_rows(["i1", "i5"], ids))
    assert np.isclose(np.linalg.norm(prof), 1.0)


def test_all_weights_zero_is_a_clear_error():
    items = catalogue()
    model = ContentRecommender(ContentConfig(w_text=0, w_tfidf=0, w_numeric=0), embed_fn=genre_embed)
    with pytest.raises(DataError, match="weight"):
        model.fit(TrainData.from_interactions(interactions(items), items))
