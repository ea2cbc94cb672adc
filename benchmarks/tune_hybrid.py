"""Tune the hybrid's ranker stage on a VALIDATION split cut from the training window (the test split is never
scored): one base fit, then each trial retrains only the ranker (smartreco.evaluation.hybrid_tuning).

    .venv/bin/python benchmarks/tune_hybrid.py --source movielens [--state /tmp/state.pkl] [--trials a,b]

The validation split is the §5 rule applied inside the test split's train (the same rule once more), so
choices made here never see a test target. Writes benchmarks/results/hybrid_tuning_<source>.{json,md}
(trials append to what the file already holds for the same base fit) and adds the validation reads to
test_reads_ledger.jsonl with ``split: validation``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smartreco.data.sources import load_source  # noqa: E402
from smartreco.evaluation.evaluator import Evaluator  # noqa: E402
from smartreco.evaluation.hybrid_tuning import Trial, TuningState, run_trials  # noqa: E402
from smartreco.evaluation.split import temporal_split, validation_split  # noqa: E402
from smartreco.models.hybrid import HybridConfig, HybridRanker  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: the base fit: the most folds and the largest pools any trial uses
BASE = {"n_folds": 4, "k_cooc": 150, "k_knn": 60, "k_covisit": 60, "k_trans": 60}
#: the spike's pool (ISSUE 22): EASE 80, item-kNN 40, transitions 40, co-visitation 40, popularity 20
SPIKE_POOL = {"k_cf": 0, "k_cb": 0, "k_cooc": 80, "k_knn": 40, "k_covisit": 40, "k_trans": 40, "k_pop": 20}
DEFAULT_POOL = {
    f: getattr(HybridConfig(), f) for f in ("k_cf", "k_cooc", "k_cb", "k_pop", "k_knn", "k_covisit", "k_trans")
}
TRIALS: dict[str, dict] = {
    "current": {**DEFAULT_POOL, "n_folds": HybridConfig().n_folds},
    "folds1": {**DEFAULT_POOL, "n_folds": 1},
    "folds3": {**DEFAULT_POOL, "n_folds": 3},
    "folds4": {**DEFAULT_POOL, "n_folds": 4},
    "spike_pool": {**SPIKE_POOL, "n_folds": 2},
    "spike_pool_folds4": {**SPIKE_POOL, "n_folds": 4},
    "big_pool_folds4": {"n_folds": 4},
    "folds4_lr0.05": {**DEFAULT_POOL, "n_folds": 4, "learning_rate": 0.05},
    "folds4_leaf100": {**DEFAULT_POOL, "n_folds": 4, "min_data_in_leaf": 100},
    "folds4_leaves15": {**DEFAULT_POOL, "n_folds": 4, "num_leaves": 15},
    "folds4_binary": {**DEFAULT_POOL, "n_folds": 4, "graded_labels": False},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="movielens")
    parser.add_argument("--state", default=None, help="pickle of the base fit: reused if present, else written")
    parser.add_argument("--trials", default=",".join(TRIALS), help="comma-separated names from TRIALS")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME:JSON",
        help='a further trial, e.g. \'x:{"n_folds": 3, "k_cb": 0}\'',
    )
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    data = load_source(args.source)
    outer = temporal_split(data.interactions)
    evaluator = Evaluator(validation_split(outer.train), data.items, progress=False)  # test never loaded here
    state_path = Path(args.state) if args.state else None
    if state_path and state_path.exists():
        state = pickle.loads(state_path.read_bytes())
        print(f"[tune] base fit reused from {state_path}")
    else:
        state = _base_fit(evaluator)
        if state_path:
            state_path.write_bytes(pickle.dumps(state))
    reference = _ease(evaluator, args.out_dir, args.source)
    trials = [Trial(n, TRIALS[n]) for n in args.trials.split(",") if n]
    for spec in args.extra:
        name, _, js = spec.partition(":")
        trials.append(Trial(name, json.loads(js)))
    for trial in trials:  # written after each trial: a run stopped on a busy machine keeps what it scored
        results = run_trials(evaluator, state, [trial])
        _write(args, state, reference, results, evaluator, time.perf_counter() - t0, load0)
    return 0


def _base_fit(evaluator: Evaluator) -> TuningState:
    from smartreco.models.served import cf_artifacts, served_cf

    t0 = time.perf_counter()
    cf = cf_artifacts(served_cf().fit(evaluator.train_data))  # the served CF recipe, as evaluate gives it
    print(f"[tune] served CF fitted on the inner train in {time.perf_counter() - t0:.0f} s")
    model = HybridRanker(dataclasses.replace(HybridConfig(), **BASE), cf_model=cf)
    model.keep_ranking_rows = True
    model.fit(evaluator.train_data)
    print(f"[tune] base hybrid fitted in {time.perf_counter() - t0:.0f} s: {model.fit_info}")
    return TuningState.from_model(evaluator, model)


def _ease(evaluator: Evaluator, out_dir: str, source: str) -> dict:
    """EASE (the best peer on test) on the same validation users, so trials read as 'x EASE'."""
    cache = Path(out_dir) / f"hybrid_tuning_{source}.json"
    if cache.exists():
        old = json.loads(cache.read_text())
        if old.get("reference", {}).get("model") == "ease":
            return old["reference"]
    from smartreco.models.registry import get_model

    res = evaluator.evaluate(get_model("ease"), "ease")
    return {
        "model": "ease",
        "ndcg@10": res.metrics["ndcg@10"],
        "recall@10": res.metrics["recall@10"],
        "params": res.params,
    }


def _write(
    args, state: TuningState, reference: dict, results: list[dict], evaluator: Evaluator, wall: float, load0: float
) -> None:
    out_dir = Path(args.out_dir)
    path = out_dir / f"hybrid_tuning_{args.source}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    trials = {t["trial"]: t for t in old.get("trials", [])}
    for r in results:
        trials[r["trial"]] = {k: v for k, v in r.items() if k != "result"}
    payload = {
        "what": "hybrid ranker-stage trials on a validation split cut inside the test split's train "
        "(test targets never scored); one base fit, each trial retrains the ranker only",
        "base_fit": {k: v for k, v in dataclasses.asdict(state.config).items() if k != "lgb_params"},
        "validation_users": int(len(evaluator.eval_rows)),
        "reference": reference,
        "trials": sorted(trials.values(), key=lambda t: -t["ndcg@10"]),
        "runs": old.get("runs", [])
        + [
            {
                "wall_seconds": round(wall, 1),
                "load_average_1m_start": round(load0, 2),
                "load_average_1m_end": round(os.getloadavg()[0], 2),
                "trials": [r["trial"] for r in results],
            }
        ],
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    ref = reference
    lines = [
        f"# Hybrid ranker-stage tuning on validation: {args.source}",
        "",
        payload["what"] + f"; {payload['validation_users']} validation users.",
        "",
        f"Reference on the same users: EASE NDCG@10 {ref['ndcg@10']:.4f}, Recall@10 {ref['recall@10']:.4f}.",
        "",
        "| trial | NDCG@10 | x EASE | Recall@10 | x EASE | rounds | label groups | rows | overrides |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in payload["trials"]:
        lines.append(
            f"| {t['trial']} | {t['ndcg@10']:.4f} | {t['ndcg@10'] / ref['ndcg@10']:.3f} | "
            f"{t['recall@10']:.4f} | {t['recall@10'] / ref['recall@10']:.3f} | {t['rounds']} | "
            f"{t['groups']} | {t['ranking_rows']} | `{t['overrides']}` |"
        )
    lines += [
        "",
        "Runs (2 shared cores): "
        + "; ".join(
            f"{r['wall_seconds']:.0f} s, load {r['load_average_1m_start']} -> {r['load_average_1m_end']}"
            for r in payload["runs"]
        )
        + ".",
    ]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    reads = len(results) + (0 if old.get("reference") else 1)  # + the EASE reference, once
    with (out_dir / "test_reads_ledger.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(
            json.dumps(
                {
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "source": args.source,
                    "split": "validation",
                    "count": reads,
                    "configurations": [r["trial"] for r in results],
                    "commit": _commit(),
                }
            )
            + "\n"
        )
    print("\n".join(lines))


def _commit() -> str:
    import subprocess

    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
