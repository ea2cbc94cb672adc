"""The serving runtime's CPU cuts (issue #23's latency work) answer exactly as the code they replaced.

* ``_ranks`` / ``_steps_back`` (sorted look-ups) equal the per-candidate dict look-ups they replaced;
* ``top_k`` over a whole catalogue (an exclusion mask) or a retriever's sorted ids (binary search) equals the
  ``np.isin`` filter it replaced; ``neighbour_scores`` counting densely (bincount) equals its sort path, and
  ``with_best=False`` gives the same sums;
* ``topk_blocked(products=...)`` selects exactly what the blocked matrix product selects;
* a runtime with the id dicts and the shared content scores ranks, explains and retrieves CB candidates
  exactly (same items, scores, reasons) as one on the pandas ``get_indexer`` path that scores content twice,
  also where its ranker reads the content top-k from the CB candidates' list (``F._top_k_from``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hybrid_tiny import fitted

from smartreco.models import hybrid_features as F
from smartreco.models.serving_math import topk_blocked

pytestmark = [pytest.mark.unit]


def _ranks_reference(ids: np.ndarray, cand: np.ndarray, missing: int) -> np.ndarray:
    """The per-candidate dict look-up ``_ranks`` was before."""
    pos = np.full(len(cand), float(missing), dtype=np.float32)
    if len(ids):
        lookup = dict(zip(ids.tolist(), range(1, len(ids) + 1), strict=True))
        pos = np.fromiter((lookup.get(c, missing) for c in cand.tolist()), dtype=np.float32, count=len(cand))
    return pos


def _steps_back_reference(history: np.ndarray, items: np.ndarray) -> np.ndarray:
    pos_of = {int(h): len(history) - 1 - i for i, h in enumerate(history.tolist())}
    return np.fromiter((pos_of.get(int(b), np.nan) for b in items.tolist()), dtype=np.float32, count=len(items))


@pytest.mark.parametrize("seed", range(20))
def test_sorted_lookups_equal_the_dict_lookups(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    ids = rng.integers(0, 80, n)  # repeats included: the last position wins in both
    cand = np.unique(rng.integers(-1, 90, int(rng.integers(0, 70))))
    np.testing.assert_array_equal(F._ranks(ids, cand, 31), _ranks_reference(ids, cand, 31))
    history = rng.integers(0, 40, int(rng.integers(1, 30)))
    because = np.concatenate([rng.integers(-1, 50, 40), [-1]])
    np.testing.assert_array_equal(F._steps_back(history, because), _steps_back_reference(history, because))
    assert np.isnan(F._steps_back(np.empty(0, np.int64), because)).all()


def _top_k_reference(scores, k, exclude):
    """``top_k`` as it was for a whole catalogue: the exclusions filtered by ``np.isin``."""
    s = np.asarray(scores, dtype=np.float64)
    ids = np.arange(len(s))
    keep = ~np.isin(ids, exclude)
    ids, s = ids[keep], s[keep]
    finite = np.isfinite(s)
    ids, s = ids[finite], s[finite]
    k = min(k, len(s))
    part = np.argpartition(-s, k - 1)[:k]
    order = part[np.lexsort((ids[part], -s[part]))]
    return ids[order].astype(np.int64), s[order]


@pytest.mark.parametrize("seed", range(10))
def test_catalogue_top_k_with_an_exclusion_mask_equals_the_isin_filter(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=300), 1)  # many ties
    scores[rng.integers(0, 300, 5)] = np.nan
    exclude = np.unique(np.concatenate([rng.integers(0, 300, 40), [-1, 300, 5000]]))  # out-of-range ids too
    for k in (1, 30, 299):
        got, want = F.top_k(scores, k, exclude), _top_k_reference(scores, k, exclude)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("seed", range(10))
def test_retriever_top_k_with_a_binary_search_equals_the_isin_filter(seed):
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(0, 500, 120))  # a retriever's sorted unique ids
    scores = np.round(rng.random(len(ids)), 1)
    exclude = np.unique(np.concatenate([rng.integers(0, 500, 60), ids[:3], [-1, 10_000]]))
    got = F.top_k(scores, 25, exclude, ids=ids)
    keep = ~np.isin(ids, exclude)
    want = F.top_k(scores[keep], 25, None, ids=ids[keep])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    unsorted = ids[::-1].copy()  # not sorted: the isin filter
    np.testing.assert_array_equal(F._not_excluded(unsorted, 0, exclude, False), ~np.isin(unsorted, exclude))


def test_neighbour_scores_count_densely_with_the_sort_paths_answer(monkeypatch):
    rng = np.random.default_rng(7)
    nbr_ids = rng.integers(-1, 60, (60, 8)).astype(np.int32)
    nbr_scores = rng.random((60, 8)).astype(np.float32)
    history, weights = rng.integers(0, 60, 15), rng.random(15)
    monkeypatch.setattr(F, "_DENSE_COUNT_RATIO", 0)  # the sort (np.unique) path
    want = F.neighbour_scores(history, nbr_ids, nbr_scores, weights)
    monkeypatch.setattr(F, "_DENSE_COUNT_RATIO", 10**9)  # the bincount path
    got = F.neighbour_scores(history, nbr_ids, nbr_scores, weights)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_neighbour_sums_without_the_best_contribution_are_the_same():
    rng = np.random.default_rng(1)
    nbr_ids = rng.integers(-1, 50, (60, 8)).astype(np.int32)
    nbr_scores = rng.random((60, 8)).astype(np.float32)
    history, weights = rng.integers(0, 60, 12), rng.random(12)
    full = F.neighbour_scores(history, nbr_ids, nbr_scores, weights)
    sums = F.neighbour_scores(history, nbr_ids, nbr_scores, weights, with_best=False)
    np.testing.assert_array_equal(full[0], sums[0])
    np.testing.assert_array_equal(full[1], sums[1])
    assert sums[2] is None and sums[3] is None


@pytest.mark.parametrize("block_size", [7, 64, 65_536])
def test_topk_over_given_products_equals_the_blocked_product(block_size):
    rng = np.random.default_rng(block_size)
    items = rng.normal(size=(150, 12)).astype(np.float32)
    items[40] = items[41]  # a tie
    queries = rng.normal(size=(3, 12)).astype(np.float32)
    exclude = [[1, 2, 3], [], list(range(0, 150, 2))]
    for bias in (None, rng.normal(size=150).astype(np.float32)):
        want = topk_blocked(queries, items, 20, bias=bias, exclude=exclude, block_size=block_size)
        products = queries @ items.T
        got = topk_blocked(queries, items, 20, bias=bias, exclude=exclude, block_size=block_size, products=products)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(products, queries @ items.T)  # the caller's products are not modified
    with pytest.raises(ValueError, match="products"):
        topk_blocked(queries, items, 5, products=products[:, :10])


def _reference_runtime(model):
    """The same model's runtime on the paths the fast ones replaced: pandas ``get_indexer`` per id, content
    scored separately for the CB candidates (the exact index's own product) and for the features."""
    rt = model.runtime()
    rt._item_rows = rt._user_rows = None
    rt._dense_content = lambda: False
    rt.content = lambda hist: F.content_scores(hist, rt.side.item_vectors)
    return rt


def test_runtime_answers_exactly_as_before(monkeypatch):
    read = []
    top_k_from = F._top_k_from
    monkeypatch.setattr(F, "_top_k_from", lambda *a: read.append(top_k_from(*a)) or read[-1])
    _, model = fitted()
    fast, ref = model.runtime(), _reference_runtime(model)
    assert fast._item_rows is not None and fast._dense_content()
    w = model.window
    checked = 0
    for row in range(0, len(model.user_ids), 3):
        user = str(model.user_ids[row])
        hist = [str(model.item_ids[i]) for i in w.histories.get(row, [])]
        seen = {str(model.item_ids[i]) for i in w.seen.get(row, [])} | {"not-an-item"}
        for who in (user, "someone-new"):  # a known user and a fold-in from the same history
            cb = fast.cb_candidates(hist, 40, seen)
            assert cb == ref.cb_candidates(hist, 40, seen)
            cf = fast.cf_candidates(who, hist, 40, seen)
            assert cf == ref.cf_candidates(who, hist, 40, seen)
            ctx = {"channel": "web", "hour": row % 24}
            got = [r.to_dict() for r in fast.rank(who, hist, cf, cb, ctx, 10, seen)]
            want = [r.to_dict() for r in ref.rank(who, hist, cf, cb, ctx, 10, seen)]
            assert got == want
            checked += bool(got)
    assert checked >= 40
    assert sum(r is not None for r in read) >= 20  # the fast runtime's ranker read the CB candidates' list
    assert fast.title(str(model.item_ids[5])) == ref.title(str(model.item_ids[5]))
    assert fast.title("not-an-item") == "not-an-item" and not fast.has_user("not-a-user")
