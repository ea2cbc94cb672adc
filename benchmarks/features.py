"""Feature benchmark: build time, Feast online lookup latency (p50/p99 for 1 and 100 entities),
push latency and MiniLM embedding throughput, on MovieLens and on synthetic data with many users.

    .venv/bin/python benchmarks/features.py [--synthetic-users 1000000] [--embed-items 2000]

Writes benchmarks/results/features.json and .md. The synthetic set is generated here (vectorised,
~5 events per user) so it does not depend on the data generator.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData, assign_sessions
from smartreco.data.movielens import load_movielens
from smartreco.features.build import build_features, hash_encode

OUT = Path(__file__).resolve().parent / "results"


def synthetic(n_users: int, n_items: int = 20_000, per_user: int = 5, seed: int = 0) -> CanonicalData:
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    users = np.repeat(np.arange(n_users), per_user)
    items_idx = np.minimum(rng.zipf(1.3, n) - 1, n_items - 1)
    types = rng.choice(np.array(C.INTERACTION_TYPES, dtype=object), n, p=[0.4, 0.25, 0.1, 0.05, 0.08, 0.02, 0.1])
    ts = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 180 * 86400, n), unit="s")
    inter = pd.DataFrame(
        {
            C.USER_ID: pd.Series(users).astype(str).radd("u").to_numpy(dtype=object),
            C.ITEM_ID: pd.Series(items_idx).astype(str).radd("i").to_numpy(dtype=object),
            C.INTERACTION_TYPE: types,
            C.TIMESTAMP: ts,
            C.RATING: np.where(types == "rating", rng.integers(1, 11, n) / 2, np.nan),
            C.CHANNEL: rng.choice(np.array(C.CHANNELS, dtype=object), n),
            C.DEVICE_TYPE: rng.choice(np.array(["ios", "android", "desktop"], dtype=object), n),
        }
    )
    inter[C.SESSION_ID] = assign_sessions(inter)
    items = pd.DataFrame(
        {
            C.ITEM_ID: [f"i{k}" for k in range(n_items)],
            C.TITLE: [f"item {k}" for k in range(n_items)],
            C.CATEGORY: [f"c{k % 40}" for k in range(n_items)],
            C.PRICE: rng.uniform(1, 100, n_items),
            C.TAGS: [[] for _ in range(n_items)],
            C.DESCRIPTION: "",
        }
    )
    return CanonicalData(
        inter, items, pd.DataFrame({C.USER_ID: inter[C.USER_ID].unique()}), source=f"synthetic-{n_users}"
    )


def pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def lookups(store, user_ids: np.ndarray, reps: int) -> dict:
    from smartreco.features.store import online_user_features

    rng = np.random.default_rng(1)
    out = {}
    for k in (1, 100):
        times = []
        for _ in range(reps):
            ids = rng.choice(user_ids, size=k, replace=False).tolist()
            t0 = time.perf_counter()
            online_user_features(store, ids)
            times.append(time.perf_counter() - t0)
        out[f"{k}_entities"] = pct(times)
    return out


def _latest_only(built) -> None:
    """Keep one (latest) row per entity in the offline tables: the online store only ever holds that
    row, and materializing the full 5M-row history of the large set takes far longer than the lookups."""
    from smartreco.features._frame import latest_as_of

    for table, key in (("user_stats", C.USER_ID), ("item_stats", C.ITEM_ID), ("user_history", C.USER_ID)):
        df = pd.read_parquet(built.path(table))
        latest_as_of(df, key).to_parquet(built.path(table), index=False, use_compliant_nested_type=False)


def run_dataset(name: str, data: CanonicalData, work: Path, reps: int, latest_only: bool = False) -> dict:
    from smartreco.features.store import apply_repo, get_store, materialize, prepare_repo, push_interaction

    t0 = time.perf_counter()
    built = build_features(data, work / name / "features", encode=hash_encode)
    build_s = time.perf_counter() - t0
    print(f"{name}: features built in {build_s:.1f} s", flush=True)
    if latest_only:
        _latest_only(built)
    repo = prepare_repo(built.out_dir, work / name / "feast")
    t0 = time.perf_counter()
    apply_repo(repo)
    materialize(repo)
    mat_s = time.perf_counter() - t0
    store = get_store(repo)
    users = data.interactions[C.USER_ID].unique()
    res = {
        "interactions": len(data.interactions),
        "users": int(len(users)),
        "items": len(data.items),
        "build_seconds_total": round(build_s, 2),
        "build_seconds": built.seconds,
        "rows": built.rows,
        "apply_materialize_seconds": round(mat_s, 2),
        "materialized_latest_only": latest_only,
        "online_lookup_user_service": lookups(store, users, reps),
    }
    push = []
    for u in np.random.default_rng(2).choice(users, size=min(30, len(users)), replace=False):
        t0 = time.perf_counter()
        push_interaction(store, str(u), "bench-item", to_offline=False)
        push.append(time.perf_counter() - t0)
    res["push_online_only"] = pct(push)
    return res


def embed_throughput(n: int) -> dict:
    from smartreco.features.embeddings import encode_items

    items = load_movielens().items.head(n)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        encode_items(items, cache_dir=Path(cache))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        encode_items(items, cache_dir=Path(cache))
        warm = time.perf_counter() - t0
    return {
        "items": n,
        "cold_seconds_incl_model_load": round(cold, 2),
        "items_per_second_cold": round(n / cold, 1),
        "cached_rerun_seconds": round(warm, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic-users", type=int, default=1_000_000)
    ap.add_argument("--embed-items", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "when": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "note": "embeddings in build/lookup runs use the hash stand-in; MiniLM throughput is measured separately",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.embed_items:
            results["minilm_embedding"] = embed_throughput(args.embed_items)
            save(results)
        results["movielens"] = run_dataset("movielens", load_movielens(), work, args.reps)
        save(results)
        if args.synthetic_users:
            name = f"synthetic_{args.synthetic_users}_users"
            data = synthetic(args.synthetic_users)
            results[name] = run_dataset("synthetic", data, work, args.reps, latest_only=True)
            save(results)
    print(to_markdown(results))


def save(results: dict) -> None:
    """Written after each part, so a long run that is stopped still leaves its finished numbers."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "features.json").write_text(json.dumps(results, indent=2))
    (OUT / "features.md").write_text(to_markdown(results))


def to_markdown(r: dict) -> str:
    lines = [
        "# Feature benchmark",
        "",
        f"{r['machine']}, Python {r['python']}, {r['when']}. {r['note']}.",
        "",
        "| dataset | interactions | users | build s | apply+materialize s | lookup 1 p50/p99 ms "
        "| lookup 100 p50/p99 ms | push p50/p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, v in r.items():
        if isinstance(v, dict) and "online_lookup_user_service" in v:
            lk = v["online_lookup_user_service"]
            lines.append(
                f"| {k} | {v['interactions']} | {v['users']} | {v['build_seconds_total']} | "
                f"{v['apply_materialize_seconds']} | {lk['1_entities']['p50_ms']} / {lk['1_entities']['p99_ms']} | "
                f"{lk['100_entities']['p50_ms']} / {lk['100_entities']['p99_ms']} | "
                f"{v['push_online_only']['p50_ms']} / {v['push_online_only']['p99_ms']} |"
            )
    if "minilm_embedding" in r:
        e = r["minilm_embedding"]
        lines += [
            "",
            f"MiniLM (all-MiniLM-L6-v2, CPU): {e['items']} items cold in {e['cold_seconds_incl_model_load']} s "
            f"({e['items_per_second_cold']} items/s incl. model load); cached re-run {e['cached_rerun_seconds']} s.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
