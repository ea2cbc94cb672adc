"""``BundleRuntime``'s per-request cuts (issue #23) answer exactly as the code they replaced.

* ``rows``' memo of recent id lists gives what a fresh look-up gives, a writable array of the caller's own, and
  never mixes ids that are equal as Python keys but not as ``str`` (``1``, ``1.0``, ``True``);
* :func:`history_rows`' look-up of exact ``str`` ids in C (the id map's ``get`` mapped over them) gives the
  per-id ``str()`` look-up's rows, and any other ids take the per-id path;
* ``_as_dict`` (one gather, ``tolist``) equals the per-entry ``str()`` / ``float()`` dict;
* ``rank``'s column-wise conversion (``tolist``, one vectorised sigmoid) builds the same ``RankedItem``s, with
  the same Python types, as the per-item loop it replaced.
"""

from __future__ import annotations

import numpy as np
import pytest
from hybrid_tiny import fitted

from smartreco.models.serving_math import history_rows
from smartreco.serving import runtime as R

pytestmark = [pytest.mark.unit]


def _runtime():
    _, model = fitted()
    return model, model.runtime()


def test_rows_memo_answers_as_a_fresh_lookup_and_hands_out_copies():
    model, rt = _runtime()
    ids = [str(i) for i in model.item_ids[[5, 3, 9, 3]]] + ["not-an-item"]
    want = rt._lookup_rows(ids)
    first = rt.rows(ids)
    np.testing.assert_array_equal(first, want)
    first[:] = -7  # a caller may write to its rows: the memo is not affected
    again = rt.rows(list(ids))
    np.testing.assert_array_equal(again, want)
    assert again.flags.writeable and again is not first
    np.testing.assert_array_equal(rt.rows(tuple(ids)), want)
    np.testing.assert_array_equal(rt.rows(iter(ids)), want)  # not a list/tuple: no memo, same rows
    np.testing.assert_array_equal(rt.rows(set(ids[:1])), rt._lookup_rows(ids[:1]))
    assert len(rt.rows(None)) == 0 and len(rt.rows([])) == 0
    # more lists than the memo keeps, then the first again: still its own rows
    for j in range(R.ROWS_MEMO + 2):
        np.testing.assert_array_equal(rt.rows([str(model.item_ids[j])]), [j])
    np.testing.assert_array_equal(rt.rows(ids), want)


def test_rows_memo_keeps_ids_that_are_equal_keys_but_other_strings_apart():
    _, rt = _runtime()
    rt._item_rows = {"1": 3, "1.0": 4, "True": 5}  # 1 == 1.0 == True as dict/tuple keys, not as str()
    for ids, row in (([1], 3), ([1.0], 4), ([True], 5), (["1"], 3), ([1], 3), ([True], 5)):
        assert rt.rows(ids).tolist() == [row], ids


def test_as_dict_equals_the_per_entry_conversion():
    _, rt = _runtime()
    rng = np.random.default_rng(0)
    idx = rng.integers(-1, rt.n_items, 60)
    for scores in (rng.normal(size=60), rng.normal(size=60).astype(np.float32)):
        want = {str(rt.item_ids[i]): float(s) for i, s in zip(idx[idx >= 0], scores[idx >= 0], strict=True)}
        got = rt._as_dict(idx, scores)
        assert got == want and list(got) == list(want)
        assert all(type(k) is str and type(v) is float for k, v in got.items())
    rt.item_ids = np.arange(rt.n_items) * 10  # ids stored as numbers: str() of each, as before
    want = {str(rt.item_ids[i]): float(s) for i, s in zip(idx[idx >= 0], scores[idx >= 0], strict=True)}
    got = rt._as_dict(idx, scores)
    assert got == want and all(type(k) is str for k in got)


def _rank_reference(rt, user_id, history, cf, cb, context, n, exclude, max_share=0.5):
    """``rank`` as it was: one numpy scalar conversion and one sigmoid per returned item."""
    uc = rt.features(user_id, history, context, exclude, list((cf or {}).keys()) + list((cb or {}).keys()))
    pred = rt.booster.predict(uc.features, num_threads=1)
    order = np.lexsort((uc.items, -pred))
    chosen = order[R.diversify(rt.categories[uc.items[order]], n, max_share)]
    contrib = rt.attributions(uc.features[chosen])
    out = []
    for j, (rank, pos) in enumerate(enumerate(chosen, start=1)):
        item, because = int(uc.items[pos]), int(uc.because[pos])
        out.append(
            R.RankedItem(
                item_id=str(rt.item_ids[item]),
                title=str(rt.titles[item]),
                category=str(rt.categories[item]),
                score=float(pred[pos]),
                rank=rank,
                confidence=float(R._sigmoid(pred[pos])),
                component_scores={k: float(v[j]) for k, v in contrib.items()},
                because_item=str(rt.item_ids[because]) if because >= 0 else None,
                because_title=str(rt.titles[because]) if because >= 0 else None,
            )
        )
    return out


def _users_with_history(model, step: int):
    """(row, user id, history ids, seen ids) of every ``step``-th training user with a history."""
    w = model.window
    for row in range(0, len(model.user_ids), step):
        hist = [str(model.item_ids[i]) for i in w.histories.get(row, [])]
        if hist:
            yield row, str(model.user_ids[row]), hist, {str(model.item_ids[i]) for i in w.seen.get(row, [])}


def test_rank_builds_the_same_items_as_the_per_item_loop():
    model, rt = _runtime()
    checked = 0
    for row, user, hist, seen in _users_with_history(model, 2):
        cf = rt.cf_candidates(user, hist, 30, seen)
        cb = rt.cb_candidates(hist, 30, seen)
        for n, share in ((10, 0.5), (25, 1.0)):
            ctx = {"channel": "web", "hour": row % 24}
            got = rt.rank(user, hist, cf, cb, ctx, n, seen, share)
            want = _rank_reference(rt, user, hist, cf, cb, ctx, n, seen, share)
            assert [g.to_dict() for g in got] == [x.to_dict() for x in want]
            for g in got:  # the same Python types (json and dataclass consumers see no numpy scalars)
                assert type(g.score) is float and type(g.confidence) is float and type(g.rank) is int
                assert all(type(v) is float for v in g.component_scores.values())
            checked += len(got) > 0 and any(g.because_item for g in got)
    assert checked >= 20


def test_rows_of_exact_str_ids_equal_the_per_id_lookup():
    """:func:`history_rows` over an id map (its ``get`` mapped in C for exact ``str`` ids) answers as the per-id
    ``str()`` and ``get``: order and duplicates kept, unknown ids dropped, int64, empty in empty out; ``rows``
    gives the same; anything else (a str subclass, mixed types) takes the per-id ``str()`` path."""
    model, rt = _runtime()
    assert rt._item_rows is not None  # the dict path is the one under test
    known = [str(i) for i in model.item_ids]
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 7, 60):
        ids = [known[j] for j in rng.integers(0, len(known), n)] + ["not-an-item", ""][: n % 3]
        rng.shuffle(ids)
        rows = np.asarray([rt._item_rows.get(str(h), -1) for h in ids], dtype=np.int64)
        want = rows[rows >= 0]
        got = history_rows(ids, rt._item_rows)
        assert got.dtype == want.dtype == np.int64
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(rt.rows(list(ids)), want)

    class Sub(str):
        pass

    asked: list[object] = []

    class Recording(dict):
        def get(self, key, default=None):
            asked.append(key)
            return super().get(key, default)

    mapping = Recording(rt._item_rows)
    for ids in ([Sub(known[1])], [known[1], 5], [5]):
        rows = np.asarray([rt._item_rows.get(str(h), -1) for h in ids], dtype=np.int64)
        np.testing.assert_array_equal(history_rows(ids, mapping), rows[rows >= 0])
    assert asked and all(type(k) is str for k in asked)  # each id went through str(): the per-id path


def test_diversify_walks_the_score_order():
    cats = np.asarray(["A", "A", "A", "B", "C", "A"], dtype=object)
    assert R.diversify(cats, 3, 0.5).tolist() == [0, 3, 4]  # cap 1 per category of 3
    assert R.diversify(cats, 4, 0.5).tolist() == [0, 1, 3, 4]  # cap 2
    assert R.diversify(cats[[0, 1, 3, 2]], 3, 0.5).tolist() == [0, 2, 1]  # too few others: cap relaxed, fill-ins last
    assert R.diversify(cats, 0, 0.5).tolist() == [] and R.diversify(cats[:0], 3, 0.5).tolist() == []


def test_rank_serves_the_rankers_best_items_under_the_category_cap():
    """The served list is the ranker's top-n by score, skipping only items whose category is at its cap: every
    pool item scored above the list's lowest is in it or of a capped category (a regression: the list was the
    pool at the wrong positions until session 9)."""
    model, rt = _runtime()
    checked = 0
    for _, user, hist, seen in _users_with_history(model, 3):
        n, share = 10, 0.5
        got = rt.rank(user, hist, None, None, {"hour": 12}, n, seen, share)
        uc = rt.features(user, hist, {"hour": 12}, seen, [])
        if len(uc.items) <= 2 * n:
            continue
        scores = rt.booster.predict(uc.features, num_threads=1)
        pred = dict(zip((str(rt.item_ids[i]) for i in uc.items), scores, strict=True))
        shown = {g.item_id for g in got}
        assert len(got) == n and [g.score for g in got] == sorted((g.score for g in got), reverse=True)
        counts = {c: sum(g.category == c for g in got) for c in {g.category for g in got}}
        lowest = min(g.score for g in got)
        for item, score in pred.items():
            if score > lowest and item not in shown:
                category = str(rt.categories[rt.rows([item])[0]])
                assert counts.get(category, 0) >= int(share * n), (item, score, lowest)
        checked += 1
    assert checked >= 10
