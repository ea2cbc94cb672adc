"""The 10M-item hybrid bundle, built by streaming: the large path of the one bundle builder.

The small path is :meth:`smartreco.models.hybrid.HybridRanker.save_bundle` (everything in memory);
this one assembles the same arrays (:data:`smartreco.serving.bundle.REQUIRED_ARRAYS`) from parquet
shards and memory-mapped files, with the same per-item statistics builder
(:func:`smartreco.models.item_stats.item_event_stats`), and writes them with the same
:func:`~smartreco.serving.bundle.save_bundle`. ``benchmarks/scale.py`` only times these functions.

Where a served part cannot run as is at 10M items on 2 cores, the substitute is declared in the
manifest (``params`` and ``served``, :data:`SCALE_SUBSTITUTES`): MiniLM over 10M texts would take
hours, an EASE item-item matrix (n x n dense) cannot exist, and a dense score row over 10M items per
request (the ONNX scorer's output) is replaced by an ANN index over the same factors.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from smartreco.data import columns as C

#: how the 10M path's content vectors are made (recorded in the manifest as ``cb_method``)
CB_METHOD = ("random projection (dim --cb-dim) of the TF-IDF bag of title+description words plus category/"
             "subcategory/brand tokens; each token a fixed Gaussian direction seeded by its CRC32; IDF from "
             "the first 1M-item chunk; L2-normalised (smartreco.retrieval.build.content_vectors). Not MiniLM: "
             "sentence-encoding 10M texts does not fit 2 CPU cores, and the generated descriptions do not "
             "repeat (adjective/noun/brand/model-number combinations)")

#: the small path's served part -> what serves instead at 10M items, and why (the manifest's ``served``)
SCALE_SUBSTITUTES: dict[str, dict[str, str]] = {
    "cf": {"served": "lightning-sparse-mf (smartreco.models.cf_streaming: Lightning, sparse embeddings + "
                     "SparseAdam, the same scoring rule and loss as smartreco.models.cf)",
           "instead_of": "lightning-mf + cf_scorer.onnx",
           "why": "a dense score row over 10M items per request; retrieval goes through the saved ANN index "
                  "over the same factors, fold-in is the sum of the history's item factors"},
    "cb": {"served": "hashed-projection", "instead_of": "minilm+tfidf+numeric", "why": CB_METHOD},
    "neighbours": {"served": "co-visitation (consecutive items per user, sorted int64 pair keys)",
                   "instead_of": "pruned EASE item-item table",
                   "why": "EASE needs a dense n x n Gram matrix: 10M x 10M floats cannot exist"},
}


def category_codes(column, vocab: list[str]) -> np.ndarray:
    """int32 codes of a category column in ``vocab`` order; a category outside it is an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from smartreco.errors import DataError

    codes = pc.index_in(column, value_set=pa.array(vocab))
    if codes.null_count:
        raise DataError(f"category outside the manifest's categories: {column.filter(pc.is_null(codes))[0]}")
    return np.asarray(codes, dtype=np.int32)


def build_item_arrays(data_dir: Path, pairs_dir: Path, out: Path, *, cb_dim: int, seed: int) -> dict:
    """Catalogue arrays (compact ids / titles / category codes / created), CB vectors, per-item event
    statistics and each user's last 10 items, from the generated parquet folder and the CF pair shards
    (whose item rows are the catalogue rows). Returns timings and what was built."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from smartreco.errors import DataError
    from smartreco.features.streaming import BATCH_ROWS, iter_batches, parquet_parts
    from smartreco.models import serving_math as S
    from smartreco.models.cf_streaming import read_pairs_meta
    from smartreco.models.item_stats import device_vocabulary, epoch_seconds, item_event_stats
    from smartreco.retrieval.build import content_vectors, last_items
    from smartreco.retrieval.catalogue import encode_ids

    out.mkdir(parents=True, exist_ok=True)
    meta = read_pairs_meta(pairs_dir)
    n_items, n_users = meta["n_items"], meta["n_users"]
    manifest = json.loads((data_dir / "manifest.json").read_text())
    vocab = [str(c) for c in manifest["categories"]]
    item_parts = parquet_parts(data_dir / "items")
    t0 = time.perf_counter()
    ids, titles, codes, created = [], [], [], []
    writer = None
    for b in iter_batches(item_parts, [C.ITEM_ID, C.TITLE, C.CATEGORY, C.CREATED_DATE]):
        ids.append(encode_ids(b.column(0).to_pylist()))
        titles.append(encode_ids(b.column(1).to_pylist()))
        codes.append(category_codes(b.column(2), vocab))
        created.append(epoch_seconds(b.column(3)).astype(np.float64))
        tbl = pa.Table.from_batches([b]).select([C.ITEM_ID, C.TITLE, C.CATEGORY])
        writer = writer or pq.ParquetWriter(out / "catalogue.parquet", tbl.schema)
        writer.write_table(tbl)
    writer.close()
    item_ids = np.concatenate(ids)
    del ids
    cf_ids = S.read_ids(pairs_dir / S.ITEM_IDS)
    if len(item_ids) != n_items or cf_ids[0] != item_ids[0].decode() or cf_ids[-1] != item_ids[-1].decode():
        raise DataError("items table order differs from the CF pair rows")
    del cf_ids
    np.save(out / "item_id_bytes.npy", item_ids)
    np.save(out / "title_bytes.npy", np.concatenate(titles))
    np.save(out / "category_code.npy", np.concatenate(codes))
    np.save(out / "created_s.npy", np.concatenate(created))
    del item_ids, titles, codes, created
    np.save(out / "user_id_bytes.npy", encode_ids(S.read_ids(pairs_dir / S.USER_IDS)))
    ids_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    vec = np.lib.format.open_memmap(out / "cb_item_vectors.npy", mode="w+", dtype=np.float32, shape=(n_items, cb_dim))
    cb_info = content_vectors(iter_batches(item_parts, [C.TITLE, C.DESCRIPTION, C.CATEGORY, C.SUBCATEGORY,
                                                        C.BRAND]), vec, seed=seed)
    vec.flush()
    del vec
    cb_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    cutoff_s = float(np.datetime64(manifest["period"]["end"][:19], "s").astype(np.int64))
    inter_parts = parquet_parts(data_dir / "interactions")
    first = pq.read_table(inter_parts[0], columns=[C.DEVICE_TYPE]).column(0)
    device_vocab = device_vocabulary(first.to_pylist())  # the same rule as the small path, on the first shard
    channel_vocab = list(C.CHANNELS)

    def aligned() -> Iterator[tuple[np.ndarray, object]]:
        cols = [C.TIMESTAMP, C.CHANNEL, C.DEVICE_TYPE, C.RATING]
        for shard, batch in zip(meta["shards"], iter_batches(inter_parts, cols, BATCH_ROWS), strict=True):
            rows = np.load(pairs_dir / shard["file"], mmap_mode="r")[:, 1]
            if len(rows) != batch.num_rows:
                raise DataError(f"{shard['file']}: {len(rows)} pairs but {batch.num_rows} interactions")
            yield rows, batch

    for name, arr in item_event_stats(aligned(), n_items, cutoff_s, channel_vocab, device_vocab).items():
        np.save(out / f"{name}.npy", arr)
    stats_s = time.perf_counter() - t2
    t3 = time.perf_counter()
    pairs = np.concatenate([np.load(pairs_dir / s["file"]) for s in meta["shards"]])
    np.save(out / "user_last_items.npy", last_items(pairs, n_users, 10))
    hist_s = time.perf_counter() - t3
    (out / "content.json").write_text(json.dumps({"cutoff_s": cutoff_s, "channel_vocab": channel_vocab,
                                                  "device_vocab": device_vocab, "category_vocab": vocab}))
    return {"ids_titles_seconds": round(ids_s, 1), "cb_vectors_seconds": round(cb_s, 1),
            "event_stats_seconds": round(stats_s, 1), "user_history_seconds": round(hist_s, 1),
            "cb_vectors": cb_info, "cb_method": CB_METHOD, "device_vocab": device_vocab,
            "folder_gib": round(sum(f.stat().st_size for f in out.iterdir()) / 2**30, 2)}


def build_neighbours(pairs_dir: Path, out: Path, k: int) -> dict:
    """The co-visitation neighbour table (n_items x k ids + scores) from the pair shards (event order)."""
    from smartreco.models.cf_streaming import read_pairs_meta
    from smartreco.retrieval.build import covisit_neighbours

    meta = read_pairs_meta(pairs_dir)
    pairs = np.concatenate([np.load(pairs_dir / s["file"]) for s in meta["shards"]])
    ids, scores = covisit_neighbours(pairs, meta["n_items"], k)
    del pairs
    np.save(out / "nbr_ids.npy", ids)
    np.save(out / "nbr_scores.npy", scores)
    filled = (ids >= 0).sum(axis=1)
    return {"k": k, "items_with_neighbours": int((filled > 0).sum()), "mean_neighbours": round(float(filled.mean()), 2)}


def save_large_bundle(out: Path, *, cf_dir: Path, content_dir: Path, pairs_dir: Path, ranker_text: str,
                      ranker_params: dict, candidates: dict, index_dirs: dict[str, Path],
                      version: str = "scale") -> Path:
    """Assemble the 10M-item hybrid bundle: compact ("arrays") catalogue layout, the saved CF + CB indexes
    (hard-linked), memory-mapped arrays; the manifest declares each substitute (:data:`SCALE_SUBSTITUTES`)."""
    import pyarrow.parquet as pq

    from smartreco.models import serving_math as S
    from smartreco.retrieval.catalogue import compact_arrays
    from smartreco.serving.bundle import save_bundle

    info = json.loads((content_dir / "content.json").read_text())

    def mm(path: Path) -> np.ndarray:
        return np.load(path, mmap_mode="r")

    arrays = {
        "cf_user_factors": mm(cf_dir / S.USER_FACTORS), "cf_item_factors": mm(cf_dir / S.ITEM_FACTORS),
        "cf_item_bias": np.load(cf_dir / S.ITEM_BIAS), "cb_item_vectors": mm(content_dir / "cb_item_vectors.npy"),
        **{name: mm(content_dir / f"{name}.npy") for name in (
            "nbr_ids", "nbr_scores", "category_code", "item_count", "item_mean_rating", "created_s", "ctx_channel",
            "ctx_device", "ctx_hour", "pop_short", "pop_long")},
    }
    arrays.update(compact_arrays(mm(content_dir / "item_id_bytes.npy"), mm(content_dir / "title_bytes.npy"),
                                 mm(content_dir / "user_id_bytes.npy")))
    params = {**ranker_params, "cf_backend": "lightning-sparse-mf", "content": "hashed-projection",
              "nbr_method": "covisit", "ranker_trained_on": "a small catalogue of the same generator"}
    meta = {"candidates": candidates, "data_end_s": info["cutoff_s"], "fold_in": "sum",
            "channel_vocab": info["channel_vocab"], "device_vocab": info["device_vocab"],
            "catalogue_layout": "arrays", "category_vocab": info["category_vocab"], "model_version": version,
            "cb_method": CB_METHOD, "params": params,
            "served": {part: dict(sub) for part, sub in SCALE_SUBSTITUTES.items()}}
    shutil.rmtree(out, ignore_errors=True)
    return save_bundle(out, kind="hybrid", catalogue=pq.read_table(content_dir / "catalogue.parquet"),
                       user_ids=S.read_ids(pairs_dir / S.USER_IDS).to_numpy(), arrays=arrays,
                       ranker_text=ranker_text, meta=meta, index_dirs=index_dirs)
