"""The ranker's per-request pool paths answer exactly as the general helpers they stand in for (issue #23).

``candidate_features`` builds one exclusion mask per request (``_banned_rows``) and reads it in every retriever's
top-k (``_top_k_banned`` for ``top_k``), ranks a retriever's list by a scatter at the pool positions
(``_pool_ranks`` for ``_ranks``) and reads the best single neighbour contribution for the pool only
(``_best_contribution`` for ``neighbour_scores``' max/argmax). Each must give the same ids, floats and ties as
the helper it replaces, on random inputs with ties, NaN, empty histories and out-of-range ids; and the whole
``candidate_features`` must be unchanged when the general helpers are swapped back in.
"""

from __future__ import annotations

import numpy as np
import pytest
from hybrid_tiny import fitted

from smartreco.models import hybrid_features as F

pytestmark = [pytest.mark.unit]


def _assert_same(got: tuple, want: tuple) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(12))
def test_top_k_over_a_catalogue_mask_equals_top_k(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    scores = np.round(rng.normal(size=n), 1)  # many ties: the same ids must win them
    scores[rng.integers(0, n, 4)] = np.nan
    scores[rng.integers(0, n, 2)] = -np.inf
    scores = scores.astype(np.float32) if seed % 2 else scores  # float32: as the CB scores come
    exclude = np.unique(np.concatenate([rng.integers(0, n, int(rng.integers(0, n))), [-3, -1, n, n + 7, 10**6]]))
    banned = F._banned_rows(exclude, n)
    assert banned.tolist() == [i in set(exclude.tolist()) for i in range(n)]
    for k in (0, 1, 7, n, n + 5):
        _assert_same(F._top_k_banned(scores, k, banned, exclude), F.top_k(scores, k, exclude))
        none = np.empty(0, dtype=np.int64)
        _assert_same(F._top_k_banned(scores, k, F._banned_rows(none, n), none), F.top_k(scores, k, none))
    shorter = scores[: n // 2]  # scores over fewer rows than the mask: the general path, same answer
    _assert_same(F._top_k_banned(shorter, 9, banned, exclude), F.top_k(shorter, 9, exclude))


@pytest.mark.parametrize("seed", range(12))
def test_top_k_over_a_retrievers_ids_with_a_mask_equals_top_k(seed):
    rng = np.random.default_rng(100 + seed)
    n = 500
    ids = np.unique(rng.integers(0, n, int(rng.integers(0, 150))))  # sorted unique, as neighbour_scores gives
    scores = np.round(rng.random(len(ids)), 1)
    if len(ids):
        scores[rng.integers(0, len(ids), 2)] = np.nan
    exclude = np.unique(np.concatenate([rng.integers(0, n, 60), ids[:3], [-1, n, 10_000]]))
    banned = F._banned_rows(exclude, n)
    for k in (0, 1, 25, 1000):
        _assert_same(F._top_k_banned(scores, k, banned, exclude, ids=ids), F.top_k(scores, k, exclude, ids=ids))
    # ids the mask cannot answer (-1 and n excluded, n + 3 not): the general path, which drops the excluded ones
    odd = np.concatenate([ids[: len(ids) // 2], [-1, n, n + 3], ids[len(ids) // 2 :]])
    odd_scores = np.round(rng.random(len(odd)), 1)
    for k in (1, 30):
        _assert_same(F._top_k_banned(odd_scores, k, banned, exclude, ids=odd), F.top_k(odd_scores, k, exclude, ids=odd))


@pytest.mark.parametrize("seed", range(12))
def test_ranks_by_pool_position_equal_ranks(seed):
    rng = np.random.default_rng(200 + seed)
    pool = np.unique(rng.integers(0, 300, int(rng.integers(0, 120))))
    inside = rng.permutation(pool)[: int(rng.integers(0, len(pool) + 1))]  # a top list: unique, any order
    outside = np.concatenate([inside, [301, -1]])  # ids not in the pool: the general path
    for ids in (inside, outside, np.empty(0, dtype=np.int64)):
        for missing in (1, 31):
            got, want = F._pool_ranks(pool, ids, missing), F._ranks(ids, pool, missing)
            assert got.dtype == want.dtype == np.float32
            np.testing.assert_array_equal(got, want)


def _best_reference(history, nbr_ids, nbr_scores, pool):
    """What ``candidate_features`` read before: ``neighbour_scores``' max/argmax at the pool's ids (0 / -1 where
    no history item has the pool item as a neighbour)."""
    ids, _, best, src = F.neighbour_scores(history, nbr_ids, nbr_scores)
    if len(ids) == 0:
        return np.zeros(len(pool)), np.full(len(pool), -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(ids, pool), 0, len(ids) - 1)
    hit = ids[pos] == pool
    return np.where(hit, best[pos], 0.0), np.where(hit, src[pos], -1).astype(np.int64)


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_best_contribution_for_the_pool_equals_neighbour_scores_max(seed, dense, monkeypatch):
    monkeypatch.setattr(F, "_DENSE_COUNT_RATIO", 10**9 if dense else 0)  # the mask path / the binary search
    rng = np.random.default_rng(300 + seed)
    n, k = 80, 9
    nbr_ids = rng.integers(-2, n + 2, (n, k)).astype(np.int32)  # -1 and -2: none; n, n+1: ids past the table
    nbr_scores = np.round(rng.random((n, k)), 1).astype(np.float32)  # ties: the earlier history item must win
    history = rng.integers(0, n, int(rng.integers(0, 30)))  # repeats included
    pool = np.unique(np.concatenate([rng.integers(0, n + 2, int(rng.integers(0, 60))), [n + 1] if seed % 3 else []]))
    pool = pool.astype(np.int64)
    got, want = (
        F._best_contribution(history, nbr_ids, nbr_scores, pool),
        _best_reference(history, nbr_ids, nbr_scores, pool),
    )
    _assert_same(got, want)
    empty = np.empty(0, dtype=np.int64)
    _assert_same(
        F._best_contribution(empty, nbr_ids, nbr_scores, pool), _best_reference(empty, nbr_ids, nbr_scores, pool)
    )
    _assert_same(F._best_contribution(history, nbr_ids, nbr_scores, empty), (np.zeros(0), empty))


def _read_from_longer_lists(seed: int) -> tuple[int, int]:
    """``_top_k_from`` over random rows and top lists of several lengths, checked against ``_top_k_banned``
    wherever it answers; returns (answered, refused)."""
    from smartreco.models.serving_math import topk_blocked

    rng = np.random.default_rng(400 + seed)
    n = int(rng.integers(2, 300))
    scores = rng.normal(size=n).astype(np.float32)
    if seed % 2:  # many ties, some right at the cut
        scores = np.round(scores * 3).astype(np.float32)
    if seed % 5 == 0:
        scores[rng.integers(0, n, 2)] = [np.nan, -np.inf]
    if seed % 7 == 0:  # a +inf score in the list: not read (its finite part is not the finite top)
        scores[rng.integers(0, n)] = np.inf
    exclude = np.unique(rng.integers(0, n, int(rng.integers(0, n)))).astype(np.int64)
    banned = F._banned_rows(exclude, n)
    answered = refused = 0
    for long_k in (1, 5, 40, n, n + 9):
        idx, val = topk_blocked(np.ones((1, 1)), np.ones((n, 1)), long_k, exclude=[exclude], products=scores[None, :])
        top = F.TopList(exclude, idx[0], val[0])
        for k in (1, 4, 30, n):
            got = F._top_k_from(top, k, exclude)
            if got is None:
                refused += 1
                continue
            answered += 1
            want, _ = F._top_k_banned(scores, k, banned, exclude)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        assert F._top_k_from(top, 0, exclude) is None
        if len(exclude):  # a list made under other exclusions is never read
            assert F._top_k_from(top, 1, exclude[:-1]) is None
    return answered, refused


@pytest.mark.parametrize("seed", range(40))
def test_top_k_read_from_a_longer_top_list_equals_top_k(seed):
    """The fused arm's ranker reads its content top-k from the CB part's longer list (``_top_k_from``): the same
    ids in the same order as ``_top_k_banned`` over the whole row whenever it answers."""
    _read_from_longer_lists(seed)


def test_the_longer_list_cases_reach_both_answers():
    """Both branches are exercised: lists read, and lists refused (a tie at the cut, a +inf, too short)."""
    answered, refused = map(sum, zip(*(_read_from_longer_lists(seed) for seed in range(40)), strict=True))
    assert answered > 50 and refused > 50


def test_the_random_cases_reach_ties_between_history_items():
    """The tie-break is exercised: some pool item gets its best contribution from two history items at once."""
    rng = np.random.default_rng(303)
    nbr_ids = rng.integers(-2, 82, (80, 9)).astype(np.int32)
    nbr_scores = np.round(rng.random((80, 9)), 1).astype(np.float32)
    history = rng.integers(0, 80, 25)
    tied = 0
    for item in range(80):
        rows, cols = np.nonzero(nbr_ids[history] == item)
        if len(rows) > 1:
            sc = nbr_scores[history][rows, cols]
            tied += int((sc == sc.max()).sum() > 1 and len(set(rows[sc == sc.max()].tolist())) > 1)
    assert tied > 0


def _reference_helpers(monkeypatch):
    """``candidate_features`` on the general helpers: ``top_k`` with the exclusion ids, ``_ranks``, and the
    best contribution read from ``neighbour_scores``."""
    monkeypatch.setattr(F, "_top_k_banned", lambda s, k, banned, exclude, ids=None: F.top_k(s, k, exclude, ids))
    monkeypatch.setattr(F, "_pool_ranks", lambda pool, ids, missing: F._ranks(ids, pool, missing))
    monkeypatch.setattr(F, "_best_contribution", _best_reference)


def test_candidate_features_are_unchanged_on_the_general_helpers(monkeypatch):
    _, model = fitted()
    runtime = model.runtime()
    side, w = runtime.side, model.window
    cases = []
    for row in range(0, len(model.user_ids), 2):
        hist = np.asarray(w.histories.get(row, []), dtype=np.int64)
        seen = np.asarray(sorted(w.seen.get(row, [])), dtype=np.int64)
        user = model.user_ids[row]
        for cut in (len(hist), 0):  # the history, and none (a known user's factors only)
            extra = np.concatenate([np.arange(0, side.n_items, 7), [-1, side.n_items + 2], seen[:3]])
            cases.append((hist[:cut], runtime.user_vector(str(user), hist[:cut]), seen, extra, {"hour": row}))
    fast = [_features(runtime, *c) for c in cases]
    _reference_helpers(monkeypatch)
    reference = [_features(runtime, *c) for c in cases]
    checked = 0
    for (hist, _, seen, _, _), got, want in zip(cases, fast, reference, strict=True):
        np.testing.assert_array_equal(got.items, want.items)
        np.testing.assert_array_equal(got.features, want.features)  # nan where nan (array_equal's nan rule)
        np.testing.assert_array_equal(got.because, want.because)
        assert got.sources.keys() == want.sources.keys()
        for name in want.sources:
            np.testing.assert_array_equal(got.sources[name], want.sources[name])
        checked += int((got.because >= 0).any())
        # the shared body too: the history and the exclusions are never candidates, every candidate is a row
        assert not np.isin(got.items, np.concatenate([hist, seen])).any()
        assert ((got.items >= 0) & (got.items < side.n_items)).all()
    assert checked >= 20


def _features(runtime, hist, user_vec, seen, extra, context):
    return F.candidate_features(
        runtime.side,
        hist,
        user_vec,
        runtime.pop_short,
        runtime.pop_long,
        runtime.cutoff_s,
        context,
        seen,
        runtime.cand_cfg,
        extra_candidates=extra,
    )
