"""ANN vs exact retrieval on a small synthetic catalogue, and the choice of path by catalogue size."""

from __future__ import annotations

import numpy as np
import pytest

from smartreco.errors import DataError
from smartreco.models import serving_math as S
from smartreco.retrieval import index as R
from smartreco.retrieval.cf import CFRetriever

pytestmark = [pytest.mark.unit]

#: stated threshold: the ANN top-10 equals the exact top-10 (as a set) for at least 80% of users,
#: and mean top-10 overlap is at least 0.95
SAME_TOP10_SHARE = 0.8
MEAN_OVERLAP = 0.95


def catalogue(n_items: int = 6000, dim: int = 16, n_users: int = 200, seed: int = 0):
    """Clustered item vectors + bias and user queries drawn near the same clusters (like trained MF)."""
    rng = np.random.default_rng(seed)
    cent = rng.normal(size=(60, dim)).astype(np.float32)
    items = (cent[rng.integers(0, 60, n_items)] + 0.5 * rng.normal(size=(n_items, dim))).astype(np.float32) * 0.3
    bias = (0.2 * rng.normal(size=n_items)).astype(np.float32)
    users = (cent[rng.integers(0, 60, n_users)] + 0.5 * rng.normal(size=(n_users, dim))).astype(np.float32) * 0.3
    return items, bias, users


@pytest.fixture(scope="module")
def data():
    return catalogue()


@pytest.mark.parametrize("kind", ["ivf_flat", "ivf_pq", "hnsw"])
def test_ann_matches_exact_top10_on_most_users(data, kind):
    items, bias, users = data
    exact_idx, exact_sc = R.ExactIndex(items, bias).search(users, 10)
    ann = R.build_index(items, bias, kind=kind, nprobe=16)
    ann_idx, ann_sc = ann.search(users, 10)
    same = np.mean([set(a) == set(e) for a, e in zip(ann_idx, exact_idx, strict=True)])
    assert same >= SAME_TOP10_SHARE, f"{kind}: identical top-10 for only {same:.2f} of users"
    assert R.recall_at_k(ann_idx, exact_idx) >= MEAN_OVERLAP
    # scores are exact inner products + bias for whatever the ANN returns
    np.testing.assert_allclose(ann_sc, np.einsum("ud,ukd->uk", users, items[ann_idx]) + bias[ann_idx], rtol=1e-4,
                               atol=1e-5)


def test_exact_index_is_the_brute_force_top_k(data):
    items, bias, users = data
    idx, sc = R.ExactIndex(items, bias, block_size=1000).search(users[:5], 7)
    full = users[:5] @ items.T + bias
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1, kind="stable")[:, :7])
    np.testing.assert_allclose(sc, np.sort(full, axis=1)[:, ::-1][:, :7], rtol=1e-5)


def test_path_is_chosen_by_catalogue_size(data, monkeypatch):
    items, bias, _ = data
    assert R.choose_index_kind(R.EXACT_MAX_ITEMS) == "exact"
    assert R.choose_index_kind(R.EXACT_MAX_ITEMS + 1) == R.DEFAULT_ANN_KIND
    assert isinstance(R.build_index(items, bias), R.ExactIndex)
    monkeypatch.setattr(R, "EXACT_MAX_ITEMS", 1000)
    auto = R.build_index(items, bias)
    assert isinstance(auto, R.FaissANNIndex) and auto.kind == R.DEFAULT_ANN_KIND


def test_cf_retriever_picks_path_by_size_and_serves_the_cf_node_api(data, tmp_path, monkeypatch):
    items, bias, users = data
    ids = [f"i{j}" for j in range(len(items))]
    S.write_ids(tmp_path / S.ITEM_IDS, ids)
    S.write_ids(tmp_path / S.USER_IDS, [f"u{j}" for j in range(len(users))])
    np.save(tmp_path / S.ITEM_FACTORS, items)
    np.save(tmp_path / S.ITEM_BIAS, bias)
    np.save(tmp_path / S.USER_FACTORS, users)
    small = CFRetriever.load(tmp_path)
    assert small.index.kind == "exact"
    monkeypatch.setattr(R, "EXACT_MAX_ITEMS", 1000)
    large = CFRetriever.load(tmp_path)
    assert large.index.kind == R.DEFAULT_ANN_KIND
    history = ids[:3]
    a = small.cf_candidates("u1", history, 10, exclude={"i5"})
    b = large.cf_candidates("u1", history, 10, exclude={"i5"})
    assert len(a) == 10 and not ({"i0", "i1", "i2", "i5"} & set(a)) and not ({"i0", "i1", "i2", "i5"} & set(b))
    assert len(set(a) & set(b)) >= 8
    assert large.cf_candidates("stranger", [], 10) == {}
    assert len(large.cf_candidates("stranger", history, 10)) == 10  # fold-in from the history


def test_exclusions_are_never_returned(data):
    items, bias, users = data
    ann = R.build_index(items, bias, kind="ivf_flat")
    top, _ = ann.search(users[:3], 20)
    got, _ = ann.search(users[:3], 20, exclude=[top[0, :10], [], top[2]])
    assert not set(got[0]) & set(top[0, :10])
    assert not set(got[2]) & set(top[2])
    assert (got >= 0).all()


def test_save_load_memory_mapped_roundtrip(data, tmp_path):
    items, bias, users = data
    for kind in ("exact", "ivf_flat"):
        idx = R.build_index(items, bias, kind=kind, nprobe=8)
        want = idx.search(users[:20], 10)
        idx.save(tmp_path / kind)
        back = R.load_index(tmp_path / kind, mmap=True)
        assert isinstance(back.vectors, np.memmap) and back.kind == kind
        if kind != "exact":
            assert back.params["nprobe"] == 8
        got = back.search(users[:20], 10)
        np.testing.assert_array_equal(got[0], want[0])


def test_bad_input_is_a_data_error(data, tmp_path):
    items, bias, users = data
    with pytest.raises(DataError, match="bias"):
        R.build_index(items, bias[:10])
    with pytest.raises(DataError, match="kind"):
        R.build_index(items, kind="lsh")
    with pytest.raises(DataError, match="queries"):
        R.ExactIndex(items).search(users[:, :3], 5)
    with pytest.raises(DataError, match="index.json"):
        R.load_index(tmp_path)


@pytest.mark.parametrize("quantizer", ["flat", "hnsw"])
def test_ivf_coarse_quantizer_choice_keeps_recall(data, quantizer):
    items, bias, users = data
    exact, _ = R.ExactIndex(items, bias).search(users, 10)
    ann = R.build_index(items, bias, kind="ivf_flat", quantizer=quantizer, nprobe=16)
    got, _ = ann.search(users, 10)
    assert ann.params["quantizer"] == ("flat" if quantizer == "flat" else "hnsw32")
    assert R.recall_at_k(got, exact) >= MEAN_OVERLAP
    with pytest.raises(DataError, match="quantizer"):
        R.build_index(items, bias, kind="ivf_flat", quantizer="kd-tree")
