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

``ann_choice`` (run first, separately) compares the index kinds at 1M clustered vectors.
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

STAGES = ("generate", "features", "pairs", "train", "index", "serve")


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
    idx = build_index(items, bias, kind=kind, nprobe=a.nprobe, progress=False)
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


STAGE_FNS = {"ann_choice": stage_ann_choice, "generate": stage_generate, "features": stage_features,
             "pairs": stage_pairs, "train": stage_train, "index": stage_index, "serve": stage_serve}


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
    for stage in a.stages.split(","):
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
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
