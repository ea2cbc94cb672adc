"""Serving bundle: save/load round trip, checksum refusal, memory-mapping, the runtime API."""

from __future__ import annotations

import json
import mmap

import numpy as np
import pytest
from hybrid_tiny import fitted

from smartreco.errors import ChecksumError
from smartreco.serving import bundle as B

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    _, model = fitted()
    return B.save_bundle(tmp_path_factory.mktemp("b") / "bundle", kind="hybrid", **model.bundle_parts())


def _req(model, row):
    w = model.window
    return (
        str(model.user_ids[row]),
        [str(model.item_ids[i]) for i in w.histories.get(row, [])],
        {str(model.item_ids[i]) for i in w.seen.get(row, [])},
    )


def test_manifest_lists_every_file_with_its_sha256(saved):
    manifest = json.loads((saved / B.MANIFEST).read_text())
    files = {p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file()} - {B.MANIFEST}
    assert set(manifest["files"]) == files
    assert manifest["kind"] == "hybrid" and manifest["version"] == B.VERSION and manifest["created"]
    assert manifest["feature_names"][0] == "cf_score"
    assert "ranker.txt" in files and (saved / "ranker.txt").read_text().startswith("tree")
    assert not any(f.endswith((".pkl", ".pickle")) for f in files)


def test_loaded_bundle_ranks_like_the_in_memory_model(saved):
    _, model = fitted()
    mem, disk = model.runtime(), B.ModelBundle.load(saved)
    for row in (1, 5, 9):
        user, hist, seen = _req(model, row)
        a = mem.rank(user, hist, {}, {}, {"channel": "web"}, 10, seen)
        b = disk.rank(user, hist, {}, {}, {"channel": "web"}, 10, seen)
        assert [r.item_id for r in a] == [r.item_id for r in b]
        np.testing.assert_allclose([r.score for r in a], [r.score for r in b], rtol=1e-6)


@pytest.mark.parametrize("target", ["arrays/nbr_scores.npy", "ranker.txt", "catalogue.parquet"])
def test_a_tampered_file_is_refused(saved, tmp_path, target):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    path = copy / target
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        B.ModelBundle.load(copy)


def test_manifest_path_tricks_and_missing_files_are_refused(saved, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    manifest = json.loads((copy / B.MANIFEST).read_text())
    manifest["files"]["../outside.txt"] = "0" * 64
    (copy / B.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ChecksumError, match="outside the bundle"):
        B.ModelBundle.load(copy)
    del manifest["files"]["../outside.txt"]
    (copy / B.MANIFEST).write_text(json.dumps(manifest))
    (copy / "arrays" / "pop_long.npy").unlink()
    with pytest.raises(ChecksumError, match="missing"):
        B.ModelBundle.load(copy)


def _file_mapped(a) -> bool:
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def test_big_arrays_are_memory_mapped(saved, monkeypatch):
    monkeypatch.setattr(B, "_MMAP_MIN_BYTES", 0)
    bundle = B.ModelBundle.load(saved)
    # served from the file mapping, as a plain ndarray view (no np.memmap overhead per slice)
    assert _file_mapped(bundle.side.nbr_ids) and type(bundle.side.nbr_ids) is np.ndarray
    monkeypatch.setattr(B, "_MMAP_MIN_BYTES", 1 << 40)
    assert not _file_mapped(B.ModelBundle.load(saved).side.nbr_ids)


def test_runtime_api_respects_exclusions_diversity_and_explains(saved):
    _, model = fitted()
    bundle = B.ModelBundle.load(saved)
    user, hist, seen = _req(model, 2)
    exclude = set(list(bundle.popular(3, set()))[:2])
    cf = bundle.cf_candidates(user, hist, 20, exclude)
    cb = bundle.cb_candidates(hist, 20, exclude)
    assert cf and not (set(cf) & (exclude | set(hist)))
    assert not (set(cb) & (exclude | set(hist)))
    ranked = bundle.rank(user, hist, cf, cb, {"channel": "web"}, 10, exclude | seen, max_category_share=0.3)
    assert len(ranked) == 10 and [r.rank for r in ranked] == list(range(1, 11))
    assert not ({r.item_id for r in ranked} & (exclude | seen))
    cats = [r.category for r in ranked]
    assert max(cats.count(c) for c in set(cats)) <= 3
    assert all(0.0 <= r.confidence <= 1.0 for r in ranked)
    assert all(set(r.component_scores) == {"cf", "cb", "cooccurrence", "popularity", "context"} for r in ranked)
    assert all(r.because_item in hist for r in ranked if r.because_item is not None)
    assert any(r.because_item is not None for r in ranked)


def test_unknown_user_folds_in_and_cold_start_falls_back(saved):
    _, model = fitted()
    bundle = B.ModelBundle.load(saved)
    _, hist, _ = _req(model, 4)
    assert bundle.cf_candidates("nobody", hist, 5, set())  # fold-in from history
    assert bundle.cf_candidates("nobody", [], 5, set()) == {}
    cold = bundle.rank("nobody", [], {}, {}, {"channel": "mobile"}, 5, {"i0"})
    assert len(cold) == 5 and "i0" not in {r.item_id for r in cold}
    top_pop = list(bundle.popular(50, {"i0"}))
    assert all(r.item_id in top_pop for r in cold)
    games = bundle.popular(5, set(), category="games")
    assert games and all(bundle.categories[bundle.item_index.get_loc(i)] == "games" for i in games)
