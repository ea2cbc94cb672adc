"""Scale benchmark: 1M users x 10M items x 50M interactions on one 2-core machine.

    .venv/bin/python benchmarks/scale.py                        # full size, all stages
    .venv/bin/python benchmarks/scale.py --users 20000 --items 100000 --interactions 500000 --tag small
    .venv/bin/python benchmarks/scale.py --stages ann_choice    # IVF-Flat / IVF-PQ / HNSW at 1M vectors

Stages (each runs in its own subprocess, so "peak RSS" is that stage's own high-water mark,
``VmHWM`` from /proc, which includes pages of memory-mapped files it touched):

1. ``generate``  synthetic parquet (:func:`smartreco.data.synthetic.generate_to_parquet`), under /tmp
2. ``features``  chunked item popularity + user stats over the shards (:mod:`smartreco.features.streaming`)
3. ``pairs``     interactions -> int32 (user row, item row) shards (:mod:`smartreco.models.cf_streaming`)
4. ``train``     sparse-embedding MF + SparseAdam over the shards, ``--train-fraction`` of one epoch,
                 with a mid-run checkpoint; exports user/item factors (+bias) as .npy
5. ``index``     the ANN index over the 10M item factors (saved, memory-mapped on load), and
                 recall@100 against exact blocked search for ``--recall-queries`` users
6. ``serve``     the CF node's retrieval path (``inference_graph.cf_model.CFModel.predict``) in process
                 over the memory-mapped index: p50/p99 per request, plus bare ``Index.search`` p50/p99
7. ``content``   compact catalogue arrays (fixed-width id/title bytes, category codes), CB vectors
                 (:func:`smartreco.retrieval.build.content_vectors`: random projection of hashed TF-IDF
                 words, see ``smartreco.serving.large_bundle.CB_METHOD``), per-item event statistics, each
                 user's last 10 items (stages content, cooc and bundle time smartreco.serving.large_bundle)
8. ``cooc``      co-visitation neighbour table (:func:`smartreco.retrieval.build.covisit_neighbours`)
9. ``cb_index``  the CB ANN index + recall@100 vs exact on users' content profiles
10. ``ranker``   the LightGBM ranker (HybridRanker fitted on a small catalogue of the same generator)
11. ``bundle``   the 10M-item hybrid bundle: compact ("arrays") catalogue layout, saved CF + CB indexes
                 (hard-linked), everything memory-mapped on load; verify + load time
12. ``graph``    recommendations through the full graph (feature transformer -> router -> CF + CB ->
                 hybrid combiner; the ``inference_graph`` node classes via the executor's in-process
                 transport) at 10M items, plus the bundle's in-process retrieval / ranking calls
13. ``graph_processes`` (not in the default list; run it with ``.venv-serving/bin/python``, which holds
                 seldon-core) the same graph with each node a ``seldon-core-microservice`` process

``ann_choice`` (run first, separately) compares the index kinds at 1M clustered vectors. The 2026-11-25
run used ``--train-fraction 0.1 --nlist 4096 --quantizer flat --recall-queries 300``, the stages started
one by one with ``--stage`` (several at once) and collected with ``--stages "" --adopt ...``.
Results: ``benchmarks/results/scale.json`` / ``.md`` (``ann_choice.json`` for the comparison). The
generated data is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

STAGES = ("generate", "features", "pairs", "train", "index", "serve", "content", "cooc", "cb_index", "ranker",
          "bundle", "graph")


# ------------------------------------------------------------------------------------------ helpers
def vm_hwm_gib() -> float:
    """Peak resident set of this process (VmHWM), GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p90_ms": round(float(np.percentile(a, 90)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3), "max_ms": round(float(a.max()), 3)}


def clustered_vectors(n: int, dim: int, n_clusters: int, seed: int, scale: float = 0.3) -> np.ndarray:
    """Item-factor-like vectors: cluster centroids + noise (written in chunks, float32)."""
    rng = np.random.default_rng(seed)
    cent = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 1_000_000):
        m = min(n, s + 1_000_000) - s
        out[s:s + m] = (cent[rng.integers(0, n_clusters, m)] + 0.6 * rng.normal(size=(m, dim))) * scale
    return out


def timed_queries(fn, queries: np.ndarray) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


# ------------------------------------------------------------------------------------------- stages
def stage_ann_choice(a: argparse.Namespace, work: Path) -> dict:
    """IVF-Flat vs IVF-PQ vs HNSW at ``--choice-items`` clustered vectors (+bias): build, memory, recall."""
    import faiss

    from smartreco.retrieval import ExactIndex, build_index, recall_at_k

    n, dim = a.choice_items, a.dim
    v = clustered_vectors(n, dim, n_clusters=2000, seed=1)
    rng = np.random.default_rng(2)
    bias = (0.2 * rng.normal(size=n)).astype(np.float32)
    users = clustered_vectors(a.recall_queries + a.latency_queries, dim, n_clusters=2000, seed=1)[::-1].copy()
    exact = ExactIndex(v, bias)
    t0 = time.perf_counter()
    truth, _ = exact.search(users[:a.recall_queries], 100)
    exact_s = time.perf_counter() - t0
    lat_exact = percentiles(timed_queries(lambda q: exact.search(q, 100), users[:20]))
    out = {"items": n, "dim": dim, "queries": a.recall_queries, "exact_batch_seconds": round(exact_s, 2),
           "exact_single_query": lat_exact, "kinds": {}}
    settings = {"ivf_flat": [{"nprobe": p} for p in (8, 16, 32, 64)],
                "ivf_pq": [{"nprobe": p} for p in (16, 32, 64)],
                "hnsw": [{"ef_search": e} for e in (64, 128, 256)]}
    for kind in a.kinds.split(","):
        rss0 = vm_hwm_gib()
        t0 = time.perf_counter()
        idx = build_index(v, bias, kind=kind, progress=False)
        build_s = time.perf_counter() - t0
        print(kind, "build seconds", round(build_s, 1), flush=True)
        path = work / f"ann_{kind}"
        idx.save(path)
        size = sum(f.stat().st_size for f in path.iterdir() if f.name == "faiss.index")
        rows = []
        for s in settings[kind]:
            idx.set_search_params(**s)
            got, _ = idx.search(users[:a.recall_queries], 100)
            lat = percentiles(timed_queries(lambda q, ix=idx: ix.search(q, 100), users[a.recall_queries:]))
            rows.append({**s, "recall@100": round(recall_at_k(got, truth), 4), **lat})
            print(kind, rows[-1], flush=True)
        out["kinds"][kind] = {"build_seconds": round(build_s, 1), "faiss_file_gib": round(size / 2**30, 3),
                              "peak_rss_gib_after": round(vm_hwm_gib(), 2), "peak_rss_gib_before": round(rss0, 2),
                              "params": {k: v for k, v in idx.params.items() if k != "max_norm"}, "search": rows}
        shutil.rmtree(path)
        del idx
    out["faiss"] = faiss.__version__
    return out


def stage_generate(a: argparse.Namespace, work: Path) -> dict:
    from smartreco.data.synthetic import generate_to_parquet

    manifest = generate_to_parquet(work / "data", a.users, a.items, a.interactions, seed=a.seed, overwrite=True,
                                   progress=False)
    size = sum(f.stat().st_size for f in (work / "data").rglob("*.parquet"))
    return {"sizes": manifest["sizes"], "output_gib": round(size / 2**30, 3)}


def stage_features(a: argparse.Namespace, work: Path) -> dict:
    from smartreco.features.streaming import streaming_stats

    items, users = streaming_stats(work / "data", work / "features", progress=False)
    return {"item_rows": len(items), "user_rows": len(users),
            "items_with_interactions": int((items["interaction_count"] > 0).sum()),
            "interactions_counted": int(items["interaction_count"].sum())}


def stage_pairs(a: argparse.Namespace, work: Path) -> dict:
    from smartreco.models.cf_streaming import build_pairs

    meta = build_pairs(work / "data", work / "pairs", progress=False)
    return {k: meta[k] for k in ("n_users", "n_items", "n_pairs")} | {"shards": len(meta["shards"])}


def stage_train(a: argparse.Namespace, work: Path) -> dict:
    import torch

    from smartreco.models.cf_streaming import ShardPairs, StreamingCFConfig, export_factors, train_streaming_mf

    torch.set_num_threads(1)  # measured: 2 intra-op threads on this shared 2-core box were 5x slower
    cfg = StreamingCFConfig(dim=a.dim, batch_size=a.batch_size, n_negatives=a.negatives)
    steps = len(ShardPairs(work / "pairs", cfg.batch_size, cfg.seed, a.train_fraction))
    ckpt = work / "ckpt"
    shutil.rmtree(ckpt, ignore_errors=True)
    t0 = time.perf_counter()
    # first half, checkpoint, then a fresh process-level resume from last.ckpt for the rest
    half = max(1, steps // 2)
    train_streaming_mf(work / "pairs", cfg, fraction=a.train_fraction, ckpt_dir=ckpt, ckpt_every_steps=half,
                       max_steps=half, progress=False)
    first_s = time.perf_counter() - t0
    ckpt_bytes = (ckpt / "last.ckpt").stat().st_size
    t1 = time.perf_counter()
    module = train_streaming_mf(work / "pairs", cfg, fraction=a.train_fraction, ckpt_dir=ckpt,
                                ckpt_every_steps=half, progress=False)
    resumed_s = time.perf_counter() - t1
    export_factors(module, work / "pairs", work / "cf")
    shutil.rmtree(ckpt, ignore_errors=True)
    pairs = steps * cfg.batch_size
    return {"config": cfg.__dict__, "train_fraction": a.train_fraction, "steps": steps,
            "global_step_end": int(module.global_step), "pairs_seen_approx": pairs,
            "first_half_seconds_incl_checkpoint": round(first_s, 1),
            "resumed_second_half_seconds": round(resumed_s, 1), "checkpoint_gib": round(ckpt_bytes / 2**30, 2),
            "embedding_rows": int(module.user_emb.num_embeddings + module.item_emb.num_embeddings)}


def _cf_arrays(work: Path):
    from smartreco.models import serving_math as S

    d = work / "cf"
    return (np.load(d / S.USER_FACTORS, mmap_mode="r"), np.load(d / S.ITEM_FACTORS, mmap_mode="r"),
            np.load(d / S.ITEM_BIAS), np.load(work / "pairs" / "user_counts.npy"))


def _query_users(work: Path, n: int, seed: int) -> np.ndarray:
    """Rows of users with training pairs (their factors were learned), sampled without replacement."""
    counts = np.load(work / "pairs" / "user_counts.npy")
    active = np.flatnonzero(counts > 0)
    return np.sort(np.random.default_rng(seed).choice(active, size=min(n, len(active)), replace=False))


def stage_index(a: argparse.Namespace, work: Path) -> dict:
    from smartreco.retrieval import ExactIndex, build_index, choose_index_kind, load_index, recall_at_k

    users, items, bias, _ = _cf_arrays(work)
    kind = choose_index_kind(len(items)) if a.index_kind == "auto" else a.index_kind
    t0 = time.perf_counter()
    idx = build_index(items, bias, kind=kind, progress=False, **_ivf_args(a, kind))
    build_s = time.perf_counter() - t0
    idx.save(work / "index")
    save_s = time.perf_counter() - t0 - build_s
    hwm_build = vm_hwm_gib()
    del idx
    idx = load_index(work / "index", mmap=True)
    q = np.asarray(users[_query_users(work, a.recall_queries, 11)], dtype=np.float32)
    t1 = time.perf_counter()
    truth, truth_s = ExactIndex(items, bias).search(q, 100)
    exact_s = time.perf_counter() - t1
    sweep = []
    for nprobe in sorted({max(1, a.nprobe // 2), a.nprobe, a.nprobe * 2, a.nprobe * 4, a.nprobe * 8}):
        if hasattr(getattr(idx, "faiss_index", None), "nprobe"):
            idx.set_search_params(nprobe=nprobe)
        t2 = time.perf_counter()
        got, got_s = idx.search(q, 100)
        sweep.append({"nprobe": nprobe, "recall@100": round(recall_at_k(got, truth), 4),
                      "recall@10": round(recall_at_k(got[:, :10], truth[:, :10]), 4),
                      "top1_score_gap_mean": round(float(np.mean(truth_s[:, 0] - got_s[:, 0])), 6),
                      "batch_ms_per_query": round((time.perf_counter() - t2) * 1000 / len(q), 3)})
        print(sweep[-1], flush=True)
    size = sum(f.stat().st_size for f in (work / "index").iterdir())
    return {"kind": kind, "build_seconds": round(build_s, 1), "save_seconds": round(save_s, 1),
            "peak_rss_gib_after_build": round(hwm_build, 2), "index_folder_gib": round(size / 2**30, 2),
            "params": {k: v for k, v in idx.params.items() if k != "max_norm"}, "recall_queries": len(q),
            "exact_seconds_for_queries": round(exact_s, 1), "sweep": sweep, "serving_nprobe": a.nprobe}


def _ivf_args(a: argparse.Namespace, kind: str) -> dict:
    """Build settings from the command line (--nlist 0 / --quantizer auto: the library defaults)."""
    if kind == "exact":
        return {}
    out: dict = {"nprobe": a.nprobe}
    if kind in ("ivf_flat", "ivf_pq"):
        out["quantizer"] = a.quantizer
        if a.nlist:
            out["nlist"] = a.nlist
    return out


def stage_serve(a: argparse.Namespace, work: Path) -> dict:
    import pandas as pd

    from inference_graph.cf_model import CFModel
    from smartreco.retrieval.cf import CFRetriever

    t0 = time.perf_counter()
    pop = pd.read_parquet(work / "features" / "item_stats.parquet", columns=["popularity_decayed"])
    retr = CFRetriever.load(work / "cf", work / "index", popularity=pop["popularity_decayed"].to_numpy())
    nprobe = None
    if hasattr(getattr(retr.index, "faiss_index", None), "nprobe"):
        # the smallest nprobe of the index stage's sweep that reached recall@100 >= 0.9 (else the largest)
        sweep = json.loads((work / "stage_index.json").read_text())["sweep"]
        ok = [w["nprobe"] for w in sweep if w["recall@100"] >= 0.9]
        nprobe = min(ok) if ok else max(w["nprobe"] for w in sweep)
        retr.index.set_search_params(nprobe=nprobe)
    load_s = time.perf_counter() - t0
    node = CFModel(model_uri=str(work / "cf"), num_candidates=100)
    node.bundle, node.loaded, node.model_version = retr, True, "scale-bench"
    rows = _query_users(work, a.latency_queries, 13)
    rng = np.random.default_rng(5)
    hist_rows = rng.integers(0, len(retr.item_ids), size=(len(rows), 10))
    reqs = [{"request": {"user_id": str(retr.user_index[r]), "num_recommendations": 10,
                         "exclude_items": [str(retr.item_ids[hist_rows[j, 0]])]},
             "history": [str(x) for x in retr.item_ids[hist_rows[j]]]} for j, r in enumerate(rows)]
    for r in reqs[:20]:  # warm-up (first touches of the memory-mapped pages)
        node.predict(r)
    node_ms, search_ms, n_out = [], [], []
    for r in reqs:
        t1 = time.perf_counter()
        out = node.predict(r)
        node_ms.append((time.perf_counter() - t1) * 1000)
        n_out.append(len(out["candidates"]))
    q = np.asarray(retr.user_factors[rows], dtype=np.float32)
    for v in q:
        t1 = time.perf_counter()
        retr.index.search(v[None, :], 100)
        search_ms.append((time.perf_counter() - t1) * 1000)
    cold = node.predict({"request": {"user_id": "nobody", "num_recommendations": 10}, "history": []})
    return {"measured": "inference_graph.cf_model.CFModel.predict in process (CF node of the graph) over "
                        "CFRetriever = memory-mapped factors + memory-mapped index; k=100 candidates, "
                        "10-item history + 1 excluded item per request, known users",
            "items": len(retr.item_ids), "index_kind": retr.index.kind, "nprobe": nprobe,
            "load_seconds": round(load_s, 1),
            "cf_node_predict": percentiles(node_ms), "index_search_k100": percentiles(search_ms),
            "min_candidates_returned": int(min(n_out)), "cold_start_path": cold["cold_start"]}


# ------------------------------------------------------------------ full-graph bundle at 10M items
def _content_dir(work: Path) -> Path:
    return work / "content"


def stage_content(a: argparse.Namespace, work: Path) -> dict:
    """Catalogue arrays, CB vectors, per-item event statistics (smartreco.serving.large_bundle, timed here)."""
    from smartreco.serving.large_bundle import build_item_arrays

    return build_item_arrays(work / "data", work / "pairs", _content_dir(work), cb_dim=a.cb_dim, seed=a.seed)


def stage_cooc(a: argparse.Namespace, work: Path) -> dict:
    """Co-visitation neighbour table (n_items x --nbr-k) from the pair shards (event order per user)."""
    from smartreco.serving.large_bundle import build_neighbours

    return build_neighbours(work / "pairs", _content_dir(work), a.nbr_k)


def _user_profiles(work: Path, vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """CB queries: the content profile of each user's last 10 items (what the CB node searches with)."""
    from smartreco.models.serving_math import cb_profile_from_history

    hist = np.load(_content_dir(work) / "user_last_items.npy", mmap_mode="r")
    out = []
    for r in rows:
        h = np.asarray(hist[r])
        out.append(cb_profile_from_history(vectors, h[h >= 0]))
    return np.asarray(out, dtype=np.float32)


def score_recall(got_s: np.ndarray, truth_s: np.ndarray) -> float:
    """Tie-aware recall@k: share of the ANN's k items whose exact score reaches the exact k-th score (equal
    content vectors make id-based recall undercount when several items tie at the cut-off)."""
    kth = truth_s[:, -1:]
    return float(np.mean(got_s >= kth - 1e-6))


def stage_cb_index(a: argparse.Namespace, work: Path) -> dict:
    """The CB ANN index over the 10M content vectors + recall@100 vs exact (not popularity-dominated)."""
    from smartreco.retrieval import ExactIndex, build_index, load_index, recall_at_k

    vec = np.load(_content_dir(work) / "cb_item_vectors.npy", mmap_mode="r")
    t0 = time.perf_counter()
    idx = build_index(vec, None, kind="ivf_flat", progress=False, **_ivf_args(a, "ivf_flat"))
    build_s = time.perf_counter() - t0
    idx.save(work / "cb_index")
    hwm_build = vm_hwm_gib()
    del idx
    idx = load_index(work / "cb_index", mmap=True)
    q = _user_profiles(work, vec, _query_users(work, a.recall_queries, 17))
    q = q[np.linalg.norm(q, axis=1) > 0]
    t1 = time.perf_counter()
    truth, truth_s = ExactIndex(vec, None).search(q, 100)
    exact_s = time.perf_counter() - t1
    sweep = []
    for nprobe in sorted({max(1, a.nprobe // 2), a.nprobe, a.nprobe * 2, a.nprobe * 4}):
        idx.set_search_params(nprobe=nprobe)
        t2 = time.perf_counter()
        got, got_s = idx.search(q, 100)
        sweep.append({"nprobe": nprobe, "recall@100": round(recall_at_k(got, truth), 4),
                      "score_recall@100": round(score_recall(got_s, truth_s), 4),
                      "recall@10": round(recall_at_k(got[:, :10], truth[:, :10]), 4),
                      "batch_ms_per_query": round((time.perf_counter() - t2) * 1000 / len(q), 3)})
        print("cb", sweep[-1], flush=True)
    ok = [w["nprobe"] for w in sweep if w["recall@100"] >= 0.9]
    serving = min(ok) if ok else max(w["nprobe"] for w in sweep)
    idx.set_search_params(nprobe=serving)
    _save_params(work / "cb_index", idx)
    distinct = len(np.unique(truth[: min(50, len(truth))]))
    return {"kind": idx.kind, "build_seconds": round(build_s, 1), "peak_rss_gib_after_build": round(hwm_build, 2),
            "params": {k: v for k, v in idx.params.items() if k != "max_norm"}, "recall_queries": len(q),
            "exact_seconds_for_queries": round(exact_s, 1), "sweep": sweep, "serving_nprobe": serving,
            "distinct_items_in_50_exact_top100": int(distinct),
            "index_folder_gib": round(sum(f.stat().st_size for f in (work / "cb_index").iterdir()) / 2**30, 2)}


def _save_params(folder: Path, idx) -> None:
    """Store the chosen search parameters (nprobe) in a saved index's index.json (the faiss file is unchanged)."""
    meta_path = folder / "index.json"
    meta = json.loads(meta_path.read_text())
    meta["params"].update({k: v for k, v in idx.params.items() if k in ("nprobe", "ef_search", "refine")})
    meta_path.unlink()  # a new file, never a write through a hard link into a bundle
    meta_path.write_text(json.dumps(meta, indent=2))


def stage_ranker(a: argparse.Namespace, work: Path) -> dict:
    """The LightGBM ranker: fitted by HybridRanker on a small catalogue of the same generator (its features
    are catalogue-size free: scores, ranks, counts, shares); only its text model goes into the 10M bundle."""
    from dataclasses import asdict

    from smartreco.data.synthetic import generate_in_memory
    from smartreco.evaluation.split import temporal_split
    from smartreco.models.base import TrainData
    from smartreco.models.hybrid import HybridConfig, HybridRanker

    data = generate_in_memory(n_users=a.ranker_users, n_items=a.ranker_items, n_interactions=a.ranker_interactions,
                              seed=a.seed)
    split = temporal_split(data.interactions)
    train = TrainData.from_interactions(split.train, data.items)
    # the 10M bundle's substitutes (smartreco.serving.large_bundle.SCALE_SUBSTITUTES): hashed content and a
    # sum fold-in CF, so the ranker learns on the features the 10M bundle serves
    cfg = HybridConfig(nbr_k=a.nbr_k, all_interactions_table=False, cb_dims=a.cb_dim, cf_backend="svd",
                       content="hashed")
    t0 = time.perf_counter()
    model = HybridRanker(cfg, progress=False).fit(train)
    fit_s = time.perf_counter() - t0
    out = work / "ranker"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranker.txt").write_text(model.booster.model_to_string())
    info = {"candidates": asdict(cfg.candidates()), "fit_seconds": round(fit_s, 1), "trees": model.booster.num_trees(),
            "trained_on": {"users": a.ranker_users, "items": a.ranker_items, "interactions": a.ranker_interactions},
            "params": model.params()}
    (out / "ranker.json").write_text(json.dumps(info, indent=2, default=str))
    return info


def stage_bundle(a: argparse.Namespace, work: Path) -> dict:
    """Assemble the 10M-item hybrid bundle (compact catalogue layout, saved CF + CB indexes), then load it."""
    from smartreco.serving.large_bundle import save_large_bundle

    cd = _content_dir(work)
    # serve the CF index at the smallest nprobe of the index stage's sweep with recall@100 >= 0.9 (set
    # before bundling: the bundle hard-links the index files)
    sweep = json.loads((work / "stage_index.json").read_text())["sweep"]
    ok = [w["nprobe"] for w in sweep if w["recall@100"] >= 0.9]
    meta_path = work / "index" / "index.json"
    imeta = json.loads(meta_path.read_text())
    imeta["params"]["nprobe"] = min(ok) if ok else max(w["nprobe"] for w in sweep)
    meta_path.unlink()
    meta_path.write_text(json.dumps(imeta, indent=2))
    ranker = json.loads((work / "ranker" / "ranker.json").read_text())
    t0 = time.perf_counter()
    save_large_bundle(work / "bundle", cf_dir=work / "cf", content_dir=cd, pairs_dir=work / "pairs",
                      ranker_text=(work / "ranker" / "ranker.txt").read_text(), ranker_params=ranker["params"],
                      candidates=ranker["candidates"], index_dirs={"cf": work / "index", "cb": work / "cb_index"},
                      version="scale-bench")
    save_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in (work / "bundle").rglob("*") if f.is_file())
    return {"save_seconds": round(save_s, 1), "bundle_gib": round(size / 2**30, 2),
            "files": len(list((work / "bundle").rglob("*.npy"))), "verify_then_load": _time_load(work / "bundle")}


def _time_load(path: Path) -> dict:
    from smartreco.serving.bundle import ModelBundle

    t0 = time.perf_counter()
    b = ModelBundle.load(path)
    return {"seconds": round(time.perf_counter() - t0, 1), "items": b.n_items, "uses_indexes": b.uses_indexes(),
            "rss_gib_after": round(rss_gib(), 2)}


def rss_gib(field: str = "VmRSS") -> float:
    """Current resident set (or ``RssAnon`` / ``RssFile``: private memory vs mapped-file pages), GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


# the feature transformer's reader in the graph stage: each user's last 10 items from the content stage
_READER: dict = {}


def bench_feature_reader(user_id: str) -> dict:
    """``SMARTRECO_FEATURE_READER=benchmarks.scale:bench_feature_reader``: stands in for the online store
    (Feast/SQLite is not loaded with 1M users here); memory-mapped arrays, newest item first."""
    from smartreco.retrieval.catalogue import IdIndex

    if not _READER:
        d = Path(os.environ["SMARTRECO_SCALE_WORK"]) / "bundle" / "arrays"
        mm = lambda n: np.load(d / f"{n}.npy", mmap_mode="r")  # noqa: E731
        _READER["users"] = IdIndex(mm("user_id_bytes"), mm("user_id_sorted"), mm("user_id_order"))
        _READER["items"] = IdIndex(mm("item_id_bytes"), mm("item_id_sorted"), mm("item_id_order"))
        _READER["hist"] = np.load(Path(os.environ["SMARTRECO_SCALE_WORK"]) / "content" / "user_last_items.npy",
                                  mmap_mode="r")
    row = _READER["users"].get(user_id)
    if row < 0:
        return {"known": False}
    h = np.asarray(_READER["hist"][row])
    h = h[h >= 0][::-1]
    return {"known": True, "recent_items": [str(x) for x in _READER["items"][h]]}


def stage_graph(a: argparse.Namespace, work: Path) -> dict:
    """Recommendations through the full graph (feature transformer -> A/B router -> CF + CB -> hybrid
    combiner) at 10M items: the node classes of inference_graph/ in process via the executor's
    InProcessTransport, over the 10M bundle; plus the bundle's in-process retrieval calls."""
    import asyncio

    os.environ["SMARTRECO_FEATURE_READER"] = "benchmarks.scale:bench_feature_reader"
    os.environ["SMARTRECO_SCALE_WORK"] = str(work)
    import inference_graph.bundle_node as bundle_node
    from inference_graph.executor.engine import GraphEngine
    from inference_graph.executor.graph import load_graph, override_parameters
    from inference_graph.executor.transport import InProcessTransport
    from smartreco.serving.bundle import ModelBundle

    t0 = time.perf_counter()
    bundle = ModelBundle.load(work / "bundle")
    load_s = time.perf_counter() - t0
    bundle.cf_index, bundle.cb_index  # noqa: B018 - open the saved indexes (memory-mapped) now
    open_s = time.perf_counter() - t0 - load_s
    # the graph's six bundle nodes share one loaded bundle in this process (node processes would each
    # map the same files); the loader is the nodes' own, replaced by "return the loaded one"
    bundle_node.load_bundle = lambda uri: bundle
    g = load_graph()
    override_parameters(g, {"*": {"model_uri": str(work / "bundle")}, "ab-router": {"store": "memory"}})
    engine = GraphEngine(g, InProcessTransport(g.nodes()), default_timeout_ms=60_000)
    reader = bench_feature_reader
    rows = _query_users(work, a.latency_queries + 50, 19)
    uids = [str(bundle.user_index[r]) for r in rows]

    def body(uid: str) -> dict:
        return {"jsonData": {"user_id": uid, "num_recommendations": 10, "context": {"channel": "web"}}}

    async def run(ids: list[str]) -> tuple[list[float], list[dict]]:
        lat, outs = [], []
        for uid in ids:
            t = time.perf_counter()
            out = await engine.predict(body(uid))
            lat.append((time.perf_counter() - t) * 1000)
            outs.append(out)
        return lat, outs

    asyncio.run(run(uids[:50]))  # warm-up: first touches of the memory-mapped pages, lazy imports
    graph_ms, outs = asyncio.run(run(uids[50:]))
    n_recs = [len(o["jsonData"]["recommendations"]) for o in outs]
    leaked = 0
    for uid, o in zip(uids[50:], outs, strict=True):
        seen = set(reader(uid).get("recent_items", []))
        leaked += len(seen & {r["item_id"] for r in o["jsonData"]["recommendations"]})
    degraded = sum(bool(o["jsonData"].get("degraded")) for o in outs)
    cold_ms, cold_outs = asyncio.run(run([f"new-user-{i}" for i in range(100)]))
    # the bundle's own calls, in process (what each node spends in retrieval / ranking)
    parts: dict[str, list[float]] = {"cf_candidates_k200": [], "cb_candidates_k200": [], "rank_top10": []}
    for uid in uids[50:]:
        hist = reader(uid)["recent_items"][::-1]
        ex = set(hist)
        t = time.perf_counter()
        cf = bundle.cf_candidates(uid, hist, 200, ex)
        parts["cf_candidates_k200"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        cb = bundle.cb_candidates(hist, 200, ex)
        parts["cb_candidates_k200"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        bundle.rank(uid, hist, cf, cb, {"channel": "web", "hour": 12}, 10, ex)
        parts["rank_top10"].append((time.perf_counter() - t) * 1000)
    cf_diag = _cf_popularity_diagnostic(bundle, rows[:50])
    arms: dict[str, int] = {}
    for o in outs:
        arm = str(o["meta"].get("routing", {}).get("ab-router", "?"))
        arms[arm] = arms.get(arm, 0) + 1
    return {"measured": "GraphEngine.predict in process (InProcessTransport): feature-transformer -> ab-router -> "
                        "(cf + cb) -> hybrid combiner, the node classes of inference_graph/ over the "
                        f"{bundle.n_items:,}-item bundle; sequential requests, known users with a 10-item history "
                        "from the reader; routing counts per arm (ab-router child index)",
            "items": bundle.n_items, "bundle_verify_load_seconds": round(load_s, 1),
            "index_open_seconds": round(open_s, 1), "cf_nprobe": bundle.cf_index.params.get("nprobe"),
            "cb_nprobe": bundle.cb_index.params.get("nprobe"), "graph_known_users": percentiles(graph_ms),
            "graph_new_users": percentiles(cold_ms), "in_process": {k: percentiles(v) for k, v in parts.items()},
            "min_recommendations": int(min(n_recs)), "history_items_recommended": leaked,
            "degraded_answers": degraded, "arms": arms, "cf_popularity_diagnostic": cf_diag,
            "rss_gib_end": round(rss_gib(), 2), "rss_anon_gib_end": round(rss_gib("RssAnon"), 2),
            "rss_file_gib_end": round(rss_gib("RssFile"), 2)}


def stage_graph_processes(a: argparse.Namespace, work: Path) -> dict:
    """The same graph with every node as its own ``seldon-core-microservice`` process (REST between the
    executor engine and the nodes), each node loading (verifying + memory-mapping) the 10M bundle itself.
    Run with the serving venv's python (it holds seldon-core)."""
    import asyncio

    os.environ["SMARTRECO_FEATURE_READER"] = "benchmarks.scale:bench_feature_reader"
    os.environ["SMARTRECO_SCALE_WORK"] = str(work)
    from inference_graph.executor.engine import GraphEngine
    from inference_graph.executor.graph import load_graph, override_parameters
    from inference_graph.executor.processes import ProcessGroup
    from inference_graph.executor.transport import RestTransport

    g = load_graph()
    override_parameters(g, {"*": {"model_uri": str(work / "bundle")}, "ab-router": {"store": "memory"}})
    # OMP_NUM_THREADS=1: the wrapper loads the bundle (LightGBM Booster, an OpenMP region) in the gunicorn
    # master and again in the forked worker; with an OpenMP thread pool in the master, libgomp deadlocks
    # in the child (seen here: the worker hangs in LoadModelFromString). Nodes score one request per thread.
    group = ProcessGroup(g.nodes(), work / "graph-logs", extra_env={"GUNICORN_KEEPALIVE": "60", "OMP_NUM_THREADS": "1"},
                         threads=1, grpc_workers=0)
    t0 = time.perf_counter()
    group.spawn()
    try:
        group.wait(timeout_s=a.node_start_timeout)
        start_s = time.perf_counter() - t0
        transport = RestTransport(group.urls())
        engine = GraphEngine(g, transport, default_timeout_ms=60_000)
        users = np.load(work / "bundle" / "arrays" / "user_id_bytes.npy", mmap_mode="r")
        rows = _query_users(work, a.latency_queries + 50, 23)
        uids = [users[r].decode() for r in rows]

        async def run(ids: list[str]) -> tuple[list[float], int]:
            lat, short = [], 0
            for uid in ids:
                t = time.perf_counter()
                out = await engine.predict({"jsonData": {"user_id": uid, "num_recommendations": 10,
                                                         "context": {"channel": "web"}}})
                lat.append((time.perf_counter() - t) * 1000)
                short += len(out["jsonData"]["recommendations"]) < 10 or bool(out["jsonData"].get("degraded"))
            return lat, short

        async def main() -> tuple[list[float], int]:
            await run(uids[:50])
            res = await run(uids[50:])
            await transport.close()
            return res

        ms, short = asyncio.run(main())
        node_rss = {name: _tree_hwm_gib(p.proc.pid) for name, p in group.procs.items()}
    finally:
        group.stop()
    return {"measured": "GraphEngine.predict over RestTransport: each of the 8 graph nodes a seldon-core-microservice "
                        "process (1 gunicorn worker, 1 thread) on this machine, sequential requests, known users",
            "node_start_seconds": round(start_s, 1), "graph_known_users": percentiles(ms),
            "short_or_degraded_answers": short, "node_peak_rss_gib": node_rss}


def _tree_hwm_gib(pid: int) -> float | None:
    """Largest VmHWM among a process and its children (the gunicorn master and its worker), GiB."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    best = None
    for p in pids:
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        hwm = [int(ln.split()[1]) for ln in lines if ln.startswith("VmHWM:")]
        if hwm:
            best = max(best or 0.0, round(hwm[0] / 2**20, 2))
    return best


def _cf_popularity_diagnostic(bundle, user_rows: np.ndarray) -> dict:
    """How popularity-dominated the CF model is: distinct items in these users' exact top-100 and the item
    bias's share of the top-100 scores (1.0 = the bias alone decides)."""
    from smartreco.retrieval import ExactIndex

    idx = bundle.cf_index
    q = np.asarray(bundle.user_factors[np.sort(user_rows)], dtype=np.float32)
    top, scores = ExactIndex(idx.vectors, idx.bias).search(q, 100)
    bias = np.asarray(idx.bias)[top]
    dots = scores - bias
    return {"users": len(q), "distinct_items_in_exact_top100": int(len(np.unique(top))),
            "bias_share_of_top100_score": round(float(np.mean(np.abs(bias) / (np.abs(bias) + np.abs(dots)))), 3)}


STAGE_FNS = {"ann_choice": stage_ann_choice, "generate": stage_generate, "features": stage_features,
             "pairs": stage_pairs, "train": stage_train, "index": stage_index, "serve": stage_serve,
             "content": stage_content, "cooc": stage_cooc, "cb_index": stage_cb_index, "ranker": stage_ranker,
             "bundle": stage_bundle, "graph": stage_graph, "graph_processes": stage_graph_processes}


# ------------------------------------------------------------------------------------------- driver
def run_stage_here(a: argparse.Namespace) -> None:
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = STAGE_FNS[a.stage](a, work)
    result = {"stage": a.stage, "seconds": round(time.perf_counter() - t0, 1), "peak_rss_gib": round(vm_hwm_gib(), 3),
              "load_average_end": list(os.getloadavg()), **result}
    (work / f"stage_{a.stage}.json").write_text(json.dumps(result, indent=2, default=str))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=10_000_000)
    p.add_argument("--interactions", type=int, default=50_000_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--work", default="/tmp/smartreco_scale")
    p.add_argument("--tag", default="scale")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--adopt", default="", help="stages already run in --work whose stage_*.json to include")
    p.add_argument("--choice-items", type=int, default=1_000_000)
    p.add_argument("--kinds", default="ivf_flat,ivf_pq,hnsw")
    p.add_argument("--recall-queries", type=int, default=500)
    p.add_argument("--latency-queries", type=int, default=1000)
    p.add_argument("--train-fraction", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--negatives", type=int, default=256)
    p.add_argument("--index-kind", default="auto")
    p.add_argument("--nprobe", type=int, default=32)
    p.add_argument("--nlist", type=int, default=0, help="IVF cells (0: smartreco.retrieval default)")
    p.add_argument("--quantizer", default="auto", choices=("auto", "flat", "hnsw"))
    p.add_argument("--node-start-timeout", type=float, default=900.0)
    p.add_argument("--cb-dim", type=int, default=32)
    p.add_argument("--nbr-k", type=int, default=20)
    p.add_argument("--ranker-users", type=int, default=4000)
    p.add_argument("--ranker-items", type=int, default=20000)
    p.add_argument("--ranker-interactions", type=int, default=200000)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    if a.stage:
        run_stage_here(a)
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / f"{a.tag}.json"
    report: dict = json.loads(out_json.read_text()) if out_json.exists() else {}
    report.update({"benchmark": "benchmarks/scale.py", "sizes": {"users": a.users, "items": a.items,
                   "interactions": a.interactions}, "dim": a.dim, "machine": machine()})
    report.setdefault("stages", {})
    for stage in filter(None, a.adopt.split(",")):  # a stage already run with --stage (same --work)
        report["stages"][stage] = json.loads((work / f"stage_{stage}.json").read_text())
    passthrough = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
                   if k not in ("stage", "stages", "keep", "adopt") and v is not None]
    for stage in filter(None, a.stages.split(",")):  # --stages "" --adopt ...: only re-collect results
        print(f"== {stage}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, f"--stage={stage}", *passthrough], cwd=ROOT)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            report["stages"][stage] = {"failed": True, "returncode": proc.returncode, "wall_seconds": round(wall, 1)}
            write_results(report, a.tag)
            raise SystemExit(f"stage {stage} failed (exit {proc.returncode})")
        res = json.loads((work / f"stage_{stage}.json").read_text())
        res["process_wall_seconds"] = round(wall, 1)
        report["stages"][stage] = res
        write_results(report, a.tag)
    report["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_results(report, a.tag)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


def machine() -> dict:
    from benchmarks.generator import machine as gen_machine

    info = gen_machine()
    info["faiss_threads"] = os.environ.get("SMARTRECO_FAISS_THREADS", "1")
    return info


def write_results(report: dict, tag: str) -> None:
    (RESULTS / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / f"{tag}.md").write_text(markdown(report))


def markdown(r: dict) -> str:
    st = r.get("stages", {})
    s = r["sizes"]
    lines = [f"# Scale benchmark: {s['users']:,} users x {s['items']:,} items x {s['interactions']:,} interactions",
             "", f"Machine: {r['machine'].get('cores')} cores, {r['machine'].get('ram_gib')} GiB, shared "
             f"(load average at start {r['machine'].get('load_average')}). Factor dim {r['dim']}. "
             "Each stage ran in its own process; peak RSS = that process's VmHWM (includes touched "
             "pages of memory-mapped files).", "",
             "| stage | seconds | peak RSS GiB | notes |", "| --- | ---: | ---: | --- |"]
    for name, x in st.items():
        if x.get("failed"):
            lines.append(f"| {name} | {x['wall_seconds']} | - | FAILED (exit {x['returncode']}) |")
            continue
        note = ""
        if name == "train":
            note = (f"{x['train_fraction']:.0%} of one epoch, {x['steps']} steps x {x['config']['batch_size']}; "
                    f"checkpoint {x['checkpoint_gib']} GiB, resumed in a second fit")
        elif name == "index":
            ok = [w for w in x["sweep"] if w["recall@100"] >= 0.9]
            best = ok[0] if ok else x["sweep"][-1]
            note = (f"{x['kind']} nlist {x['params'].get('nlist')}, quantizer {x['params'].get('quantizer')}; "
                    f"recall@100 vs exact {best['recall@100']} at nprobe {best['nprobe']}")
        elif name == "serve":
            node = x["cf_node_predict"]
            note = (f"nprobe {x.get('nprobe')}: CF node p50 {node['p50_ms']} ms / p99 {node['p99_ms']} ms; "
                    f"index.search p50 {x['index_search_k100']['p50_ms']} / p99 {x['index_search_k100']['p99_ms']} ms")
        elif name == "features":
            note = f"{x['interactions_counted']:,} interactions aggregated"
        elif name == "pairs":
            note = f"{x['n_pairs']:,} pairs in {x['shards']} shards"
        elif name == "content":
            note = (f"ids/titles {x['ids_titles_seconds']} s, CB vectors (dim {x['cb_vectors']['dim']}) "
                    f"{x['cb_vectors_seconds']} s, item event stats {x['event_stats_seconds']} s")
        elif name == "cooc":
            note = f"{x['k']} co-visit neighbours/item; {x['items_with_neighbours']:,} items have some"
        elif name == "cb_index":
            note = (f"{x['kind']} over CB vectors; recall@100 {_at(x['sweep'], x['serving_nprobe'])} at nprobe "
                    f"{x['serving_nprobe']}")
        elif name == "ranker":
            note = (f"LightGBM, {x['trees']} trees, fitted on {x['trained_on']['items']:,} items / "
                    f"{x['trained_on']['interactions']:,} interactions")
        elif name == "bundle":
            note = (f"{x['bundle_gib']} GiB; verify (SHA-256 of every file) + load "
                    f"{x['verify_then_load']['seconds']} s")
        elif name == "graph_processes":
            gk = x["graph_known_users"]
            note = (f"node processes (REST) p50 {gk['p50_ms']} ms / p99 {gk['p99_ms']} ms; nodes started in "
                    f"{x['node_start_seconds']} s")
        elif name == "graph":
            gk = x["graph_known_users"]
            note = f"full graph p50 {gk['p50_ms']} ms / p99 {gk['p99_ms']} ms ({gk['n']} requests)"
        lines.append(f"| {name} | {x['seconds']} | {x['peak_rss_gib']} | {note} |")
    if "index" in st and not st["index"].get("failed"):
        lines += ["", "## ANN recall vs exact (index stage)", "",
                  "| nprobe | recall@100 | recall@10 | batch ms/query |", "| ---: | ---: | ---: | ---: |"]
        lines += [f"| {w['nprobe']} | {w['recall@100']} | {w['recall@10']} | {w['batch_ms_per_query']} |"
                  for w in st["index"]["sweep"]]
    if "serve" in st and not st["serve"].get("failed"):
        lines += ["", "## Serving (serve stage)", "", st["serve"]["measured"] + ".", "",
                  "| path | n | p50 ms | p90 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for key in ("cf_node_predict", "index_search_k100"):
            p = st["serve"][key]
            lines.append(f"| {key} | {p['n']} | {p['p50_ms']} | {p['p90_ms']} | {p['p99_ms']} | {p['max_ms']} |")
    if "cb_index" in st and not st["cb_index"].get("failed"):
        x = st["cb_index"]
        lines += ["", "## CB ANN recall vs exact (cb_index stage)", "",
                  f"{x['recall_queries']} queries = content profiles of users' last 10 items; "
                  f"{x['distinct_items_in_50_exact_top100']} distinct items in 50 users' exact top-100 "
                  "(not popularity-dominated). score_recall = share of the ANN's items whose exact score reaches "
                  "the exact 100th score (tie-aware).", "",
                  "| nprobe | recall@100 | score_recall@100 | recall@10 | batch ms/query |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {w['nprobe']} | {w['recall@100']} | {w['score_recall@100']} | {w['recall@10']} | "
                  f"{w['batch_ms_per_query']} |" for w in x["sweep"]]
    if "graph" in st and not st["graph"].get("failed"):
        x = st["graph"]
        lines += ["", "## Recommendations through the graph at 10M items (graph stage)", "", x["measured"] + ".",
                  f"CF index nprobe {x['cf_nprobe']}, CB index nprobe {x['cb_nprobe']}; bundle verify+load "
                  f"{x['bundle_verify_load_seconds']} s; min recommendations per answer {x['min_recommendations']}; "
                  f"history items recommended {x['history_items_recommended']}; degraded answers "
                  f"{x['degraded_answers']}; arms {x['arms']}.",
                  f"CF popularity diagnostic: {x['cf_popularity_diagnostic']}.", "",
                  "| path | n | p50 ms | p90 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        rows = [("graph, known users (full ranking)", x["graph_known_users"]),
                ("graph, new users (cold start)", x["graph_new_users"])]
        rows += [(f"in process: bundle.{k}", v) for k, v in x["in_process"].items()]
        lines += [f"| {k} | {p['n']} | {p['p50_ms']} | {p['p90_ms']} | {p['p99_ms']} | {p['max_ms']} |"
                  for k, p in rows]
    if "graph_processes" in st and not st["graph_processes"].get("failed"):
        x = st["graph_processes"]
        p = x["graph_known_users"]
        lines += ["", "## The same graph as node processes (graph_processes stage)", "", x["measured"] + ".",
                  f"Nodes healthy (each verified and mapped the bundle) after {x['node_start_seconds']} s; short or "
                  f"degraded answers {x['short_or_degraded_answers']}; peak RSS per node (VmHWM of the gunicorn "
                  f"master and worker, GiB, mostly mapped-file pages): {x['node_peak_rss_gib']}. The stage's own "
                  "peak RSS is the executor side only.", "",
                  "| path | n | p50 ms | p90 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: | ---: |",
                  f"| graph over REST node processes, known users | {p['n']} | {p['p50_ms']} | {p['p90_ms']} | "
                  f"{p['p99_ms']} | {p['max_ms']} |"]
    if r.get("caveats"):
        lines += ["", "## Caveats", ""] + [f"- {c}" for c in r["caveats"]]
    return "\n".join(lines) + "\n"


def _at(sweep: list[dict], nprobe: int) -> float | None:
    return next((w["recall@100"] for w in sweep if w["nprobe"] == nprobe), None)


if __name__ == "__main__":
    main()
