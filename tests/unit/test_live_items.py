"""New items servable before a retrain (``smartreco items add``): validation that names the field, content
vectors in the bundle's own space (checked against its stored vectors), the SQLite store (idempotent,
expired when a bundle holding the item loads), and the live view over a real (tiny) hybrid bundle: the item
joins the content candidates and the ranking with a "new" explanation, under exclusions and the category cap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybrid_tiny import fitted

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.explain.reasons import explain
from smartreco.serving.live_encode import add_for_bundle, encode_for_bundle
from smartreco.serving.live_items import SqliteLiveStore, add_items, open_live_store, read_rows, validate_rows
from smartreco.serving.live_ranking import LiveRankedItem, LiveView, reserve_slots
from smartreco.serving.runtime import RankedItem

pytestmark = [pytest.mark.unit]

NEW_ID = "new-1"


@pytest.fixture(scope="module")
def tiny():
    train, model = fitted()
    return train, model.runtime()


def _user_and_copy(train) -> tuple[str, list[str], dict]:
    """A user, their history, and a new item whose content is that of their last history item."""
    inter = train.interactions.sort_values(C.TIMESTAMP, kind="stable")
    user = "u19"
    history = inter.loc[inter[C.USER_ID] == user, C.ITEM_ID].tolist()[-20:]
    row = train.items.set_index(C.ITEM_ID).loc[history[-1]].to_dict()
    row.update({C.ITEM_ID: NEW_ID, C.TITLE: "Brand new " + str(row[C.TITLE])})
    return user, history, row


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (pd.DataFrame({C.ITEM_ID: ["a"], C.TITLE: ["t"]}), "category"),
        (pd.DataFrame({C.ITEM_ID: ["a"], C.TITLE: [""], C.CATEGORY: ["c"]}), "items.title"),
        (pd.DataFrame({C.ITEM_ID: ["a"], C.TITLE: ["t"], C.CATEGORY: [None]}), "items.category"),
        (pd.DataFrame({C.ITEM_ID: ["a", "a"], C.TITLE: ["t", "u"], C.CATEGORY: ["c", "c"]}), "items.item_id"),
        (pd.DataFrame({C.ITEM_ID: ["a"], C.TITLE: ["t"], C.CATEGORY: ["c"], C.PRICE: [-1.0]}), "items.price"),
        (pd.DataFrame(columns=[C.ITEM_ID, C.TITLE, C.CATEGORY]), "no rows"),
    ],
)
def test_bad_rows_are_refused_naming_the_field(frame, field):
    with pytest.raises(DataError, match=field):
        validate_rows(frame)


def test_rows_read_from_csv_or_a_dataset_folder(tmp_path):
    pd.DataFrame({C.ITEM_ID: [7], C.TITLE: ["Seven"], C.CATEGORY: ["c"], C.TAGS: ["x|y"]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    for source in (tmp_path / "items.csv", tmp_path):
        rows = validate_rows(read_rows(source))
        assert rows[C.ITEM_ID].tolist() == ["7"] and rows[C.TAGS].tolist() == [["x", "y"]]
    with pytest.raises(DataError, match="does not exist"):
        read_rows(tmp_path / "missing.csv")


# ------------------------------------------------------------------------------------------ encoding
def test_vectors_are_in_the_bundles_space_and_the_recipe_is_checked(tiny):
    train, rt = tiny
    _, history, row = _user_and_copy(train)
    rows = validate_rows(pd.DataFrame([row]))
    vec = encode_for_bundle(rt, rows, validate_rows(train.items))
    stored = rt.side.item_vectors[rt.rows([history[-1]])[0]]
    assert vec.shape == (1, rt.side.item_vectors.shape[1])
    # same content as a catalogue item -> (nearly) its stored vector: the same encoder, the same fitted space
    assert float(vec[0] @ stored) / float(np.linalg.norm(vec[0]) * np.linalg.norm(stored)) > 0.99
    # the bundle's own catalogue lacks the tags the hashed recipe reads: refused, saying what to pass
    with pytest.raises(DataError, match="--catalogue"):
        encode_for_bundle(rt, rows)


# ------------------------------------------------------------------------------------------ store
def test_sqlite_store_is_idempotent_versioned_and_expires(tmp_path):
    store = open_live_store(tmp_path / "state.sqlite")
    assert isinstance(store, SqliteLiveStore) and store.version() == 0
    rows = validate_rows(pd.DataFrame({C.ITEM_ID: ["n1", "n2", "old"], C.TITLE: ["a", "b", "c"], C.CATEGORY: "x"}))
    vectors = np.eye(3, 4, dtype=np.float32)
    first = add_items(store, "v1", rows, vectors, in_bundle={"old"})
    assert first.added == ["n1", "n2"] and first.duplicates == ["old"]
    again = add_items(store, "v1", rows, vectors, in_bundle={"old"})
    assert again.added == [] and sorted(again.duplicates) == ["n1", "n2", "old"]
    assert store.version() == 1  # nothing stored the second time: cached live sets stay valid
    items = SqliteLiveStore(tmp_path / "state.sqlite").items("v1")  # another process / worker
    assert [it.item_id for it in items] == ["n1", "n2"] and items[0].category == "x"
    np.testing.assert_array_equal(items[1].vector, vectors[1])
    assert store.items("v2") == [] and store.known("v1", ["n2", "zz"]) == {"n2"}
    assert store.expire(["n1"]) == 1 and store.all_ids() == {"n2"} and store.version() == 2


def test_add_for_bundle_counts_duplicates_of_the_bundle_and_of_earlier_adds(tiny, tmp_path):
    train, rt = tiny
    _, history, row = _user_and_copy(train)
    store = SqliteLiveStore(tmp_path / "s.sqlite")
    in_bundle = train.items.iloc[[0]].to_dict("records")[0]
    rows = validate_rows(pd.DataFrame([row, in_bundle]))
    catalogue = validate_rows(train.items)
    first = add_for_bundle(rt, rows, store, catalogue)
    assert first.added == [NEW_ID] and first.duplicates == [str(in_bundle[C.ITEM_ID])]
    second = add_for_bundle(rt, rows, store, catalogue)
    assert second.added == [] and sorted(second.duplicates) == sorted([NEW_ID, str(in_bundle[C.ITEM_ID])])


# ------------------------------------------------------------------------------------------ serving
def test_live_item_joins_candidates_and_ranking_only_after_it_is_added(tiny, tmp_path):
    train, rt = tiny
    user, history, row = _user_and_copy(train)
    store = SqliteLiveStore(tmp_path / "s.sqlite")
    view = LiveView(rt, store, refresh_s=0.0)

    def answer(n=10, exclude=()):
        cb = view.cb_candidates(history, 200, set(exclude))
        cf = view.cf_candidates(user, history, 200, set(exclude))
        return cb, view.rank(user, history, cf, cb, {}, n, set(history) | set(exclude))

    cb, ranked = answer()
    assert NEW_ID not in cb and NEW_ID not in {r.item_id for r in ranked}
    before_cache = view.live_version
    add_for_bundle(rt, validate_rows(pd.DataFrame([row])), store, validate_rows(train.items))
    assert view.live_version != before_cache  # the combiner's cache key moves with it
    cb, ranked = answer()
    assert NEW_ID in cb and cb[NEW_ID] >= sorted(cb.values())[-10]  # as close as the history's own items
    new = [r for r in ranked if r.item_id == NEW_ID]
    assert len(new) == 1 and isinstance(new[0], LiveRankedItem) and new[0].new_item
    assert [r.rank for r in ranked] == list(range(1, 11)) and len({r.item_id for r in ranked}) == 10
    assert new[0].because_item in history and np.isfinite(new[0].score)
    assert set(new[0].component_scores) == {"cf", "cb", "cooccurrence", "popularity", "context"}
    assert view.title(NEW_ID) == row[C.TITLE]
    text = explain(new[0].component_scores, because_title=new[0].because_title, category=new[0].category, new_item=True)
    assert text.startswith(f"new in {row[C.CATEGORY]}, similar to ")
    # excluded like any item
    cb, ranked = answer(exclude=[NEW_ID])
    assert NEW_ID not in cb and NEW_ID not in {r.item_id for r in ranked}
    # the category cap holds for the merged list
    cats = [r.category for r in answer(n=10)[1]]
    assert max(cats.count(c) for c in cats) <= 5


def test_a_loaded_bundle_that_holds_an_item_expires_it(tiny, tmp_path):
    train, rt = tiny
    store = SqliteLiveStore(tmp_path / "s.sqlite")
    held = str(train.items[C.ITEM_ID].iloc[3])  # "added" before the retrain that now holds it
    rows = validate_rows(pd.DataFrame({C.ITEM_ID: [held, "n9"], C.TITLE: ["a", "b"], C.CATEGORY: "x"}))
    dim = rt.side.item_vectors.shape[1]
    add_items(store, rt.version, rows, np.ones((2, dim), dtype=np.float32) / np.sqrt(dim), in_bundle=set())
    view = LiveView(rt, store, refresh_s=0.0)
    assert store.all_ids() == {"n9"} and [it.item_id for it in view.live().items] == ["n9"]


def test_reserved_slot_only_for_a_new_item_content_puts_in_the_top_n():
    def item(i, cat, score):
        return RankedItem(i, i, cat, score, 0, 0.5)

    out = [item("a", "x", 3.0), item("b", "y", 2.0), item("c", "x", 1.0)]
    new = LiveRankedItem("n", "n", "x", -5.0, 0, 0.1)
    bundle_cb = {"a": 0.9, "b": 0.5, "c": 0.4, "d": 0.1}
    # content alone ranks it 2nd of the catalogue's top 3: it takes the lowest catalogue item of its category
    # (x is at its cap of floor(0.67 * 3) = 2)
    got = reserve_slots(out, [new], bundle_cb, {**bundle_cb, "n": 0.6}, 3, 1, 0.67)
    assert [r.item_id for r in got] == ["a", "b", "n"]
    # below the n-th catalogue content score: no slot
    assert reserve_slots(out, [new], bundle_cb, {**bundle_cb, "n": 0.3}, 3, 1, 0.67) == out
    assert reserve_slots(out, [new], bundle_cb, {**bundle_cb, "n": 0.6}, 3, 0, 0.67) == out


def test_reserved_slot_never_takes_the_place_the_session_rule_gave():
    out = [RankedItem("a", "a", "x", 3.0, 0, 0.5), RankedItem("b", "b", "y", 2.0, 0, 0.5)]
    out.append(RankedItem("s", "s", "z", 1.0, 0, 0.5, because_item="clicked", session=True))
    new = LiveRankedItem("n", "n", "w", -5.0, 0, 0.1)
    bundle_cb = {"a": 0.9, "b": 0.5, "s": 0.4}
    got = reserve_slots(out, [new], bundle_cb, {**bundle_cb, "n": 0.6}, 3, 1, 1.0)
    assert [r.item_id for r in got] == ["a", "n", "s"]  # the lowest catalogue item outside the rule's goes


def test_live_view_keeps_the_session_rules_place_beside_new_items(tiny, tmp_path):
    train, rt = tiny
    user, history, row = _user_and_copy(train)
    store = SqliteLiveStore(tmp_path / "s.sqlite")
    view = LiveView(rt, store, refresh_s=0.0)
    add_for_bundle(rt, validate_rows(pd.DataFrame([row])), store, validate_rows(train.items))

    def ranked(hist, hour, **session):
        cb = view.cb_candidates(hist, 200, set(hist))
        cf = view.cf_candidates(user, hist, 200, set(hist))
        return view.rank(user, hist, cf, cb, {"hour": hour}, 10, set(hist), **session)

    items = train.items.set_index(C.ITEM_ID)[C.CATEGORY]
    fresh = items[~items.index.isin(history)]
    cases = 0
    for hour in (3, 9, 15, 21):
        shown = {r.category for r in ranked(history, hour)}
        for missing in [c for c in fresh.value_counts().index if c not in shown and (fresh == c).sum() >= 8]:
            clicks = [str(i) for i in fresh.index[fresh == missing]][:3]
            after = [*clicks[::-1], *history]
            plain = ranked(after, hour, session_share=0.0)
            if missing in {r.category for r in plain} or not any(isinstance(r, LiveRankedItem) for r in plain):
                continue  # the case wanted: a new item in the list, the clicked category not
            ruled = ranked(after, hour, session=clicks[::-1])
            (placed,) = [r for r in ruled if r.session]
            assert placed.category == missing and placed.because_item in clicks
            assert [r.rank for r in ruled] == list(range(1, 11))
            cases += 1
    assert cases >= 1


# ------------------------------------------------------------------------------------------ command line
def test_items_add_command_on_a_saved_bundle(tmp_path, capsys):
    from smartreco.cli import main

    train, model = fitted()
    bundle = model.save_bundle(tmp_path / "bundle", meta={"model_version": "tiny-7"})
    train.items.to_parquet(tmp_path / "train_items.parquet", index=False)
    _, _, row = _user_and_copy(train)
    validate_rows(pd.DataFrame([row])).to_parquet(tmp_path / "new.parquet", index=False)
    state = tmp_path / "graph-state" / "state.sqlite"
    args = ["items", "add", "--source", str(tmp_path / "new.parquet"), "--bundle", str(bundle)]
    args += ["--catalogue", str(tmp_path / "train_items.parquet"), "--graph-state", str(state)]
    assert main(args) == 0
    assert "(tiny-7): 1 added, 0 duplicate(s)" in capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    assert '"duplicates": 1' in capsys.readouterr().out
    assert [it.item_id for it in SqliteLiveStore(state).items("tiny-7")] == [NEW_ID]
    pd.DataFrame({C.ITEM_ID: ["x"], C.TITLE: ["t"]}).to_csv(tmp_path / "bad.csv", index=False)
    bad = ["items", "add", "--source", str(tmp_path / "bad.csv"), "--bundle", str(bundle), "--graph-state", str(state)]
    assert main(bad) == 1
    assert "category" in capsys.readouterr().err


def test_without_bundle_the_command_takes_the_graphs_cb_and_hybrid_bundles():
    from smartreco.cli.items import live_bundle_uris

    assert live_bundle_uris(None) == [
        f"models:/smartreco-{name}@{alias}" for name in ("cb", "hybrid") for alias in ("challenger", "champion")
    ]


def test_every_ranker_feature_has_a_cold_start_value():
    from smartreco.models import hybrid_features as F
    from smartreco.serving import live_ranking as L

    placed = [*L.ZERO_FEATURES, *L.RANK_FEATURES, *L.COMPUTED_FEATURES]
    assert sorted(placed) == sorted(F.FEATURE_NAMES) and len(placed) == len(set(placed))
