"""Tune the hybrid's ranker stage on a VALIDATION split cut from the training window (the test split is never
scored): one base fit, then each trial retrains only the ranker (smartreco.evaluation.hybrid_tuning).

    .venv/bin/python benchmarks/tune_hybrid.py --source movielens [--state /tmp/state.pkl] [--trials a,b]
        [--base '{"n_folds": 6, "ease_lambda": 100}' --tag folds6] [--paired-against TRIAL]

``--base`` changes the base fit itself (retriever settings such as ``nbr_k`` / ``ease_lambda``, more folds,
larger pools): a different base is a different set of windows, so its trials go to their own file
(``--tag``), never merged with another base's trials. ``--paired-against`` runs that trial first and gives
every later trial of the run its paired bootstrap CI against it on the same validation users.

The validation split is the §5 rule applied inside the test split's train (the same rule once more), so
choices made here never see a test target. Writes benchmarks/results/hybrid_tuning_<source>[_<tag>].{json,md}
(trials append to what the file already holds for the same base fit) and adds the validation reads to
test_reads_ledger.jsonl with ``split: validation``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smartreco.data.sources import load_source  # noqa: E402
from smartreco.evaluation import metrics as M  # noqa: E402
from smartreco.evaluation.evaluator import Evaluator, compare  # noqa: E402
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


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict]:
    """The options and the base fit (``BASE`` with ``--base`` merged in); a changed base needs a ``--tag``
    (its own results file: trials of different base fits are different windows and never share a table)."""
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
    parser.add_argument("--base", default="{}", metavar="JSON", help="HybridConfig fields merged into BASE")
    parser.add_argument("--tag", default="", help="results file suffix: hybrid_tuning_<source>_<tag>")
    parser.add_argument(
        "--paired-against",
        default="",
        metavar="TRIAL",
        help="run this trial first; every later trial of the run gets its paired bootstrap CI against it",
    )
    args = parser.parse_args(argv)
    try:
        extra = json.loads(args.base)
    except json.JSONDecodeError as exc:
        parser.error(f"--base is not JSON: {exc}")
    if not isinstance(extra, dict):
        parser.error("--base must be a JSON object of HybridConfig fields")
    unknown = set(extra) - {f.name for f in dataclasses.fields(HybridConfig)}
    if unknown:
        parser.error(f"--base: {sorted(unknown)} are not HybridConfig fields")
    if args.tag and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.tag):
        parser.error(f"--tag {args.tag!r}: letters, digits, '.', '_' and '-' only (it names a file)")
    base = {**BASE, **extra}
    if base != BASE and not args.tag:
        parser.error("--base changes the base fit: give its trials their own file with --tag")
    return args, base


def main(argv: list[str] | None = None) -> int:
    args, base = parse_args(argv)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    data = load_source(args.source)
    outer = temporal_split(data.interactions)
    evaluator = Evaluator(validation_split(outer.train), data.items, progress=False)  # test never loaded here
    state_path = Path(args.state) if args.state else None
    if state_path and state_path.exists():
        state = pickle.loads(state_path.read_bytes())
        print(f"[tune] base fit reused from {state_path}")
    else:
        state = _base_fit(evaluator, base)
        if state_path:
            state_path.write_bytes(pickle.dumps(state))
    return tune(args, base, evaluator, state, t0, load0)


def tune(
    args: argparse.Namespace, base: dict, evaluator: Evaluator, state: TuningState, t0: float, load0: float
) -> int:
    """Score the trials on ``evaluator``'s (validation) users from the base fit ``state``, writing the results
    file and the ledger after each trial (a run stopped on a busy machine keeps what it scored)."""
    held = {k: getattr(state.config, k) for k in base}
    if held != base:
        raise SystemExit(f"[tune] the base fit given ({args.state or 'state'}) is {held}, not {base}")
    reference, fresh = _ease(evaluator, args.out_dir, args.source)
    trials = [Trial(n, TRIALS[n]) for n in args.trials.split(",") if n]
    for spec in args.extra:
        name, _, js = spec.partition(":")
        trials.append(Trial(name, json.loads(js)))
    if args.paired_against:
        first = [t for t in trials if t.name == args.paired_against]
        if not first:
            raise SystemExit(f"[tune] --paired-against {args.paired_against}: not among this run's trials")
        trials = first + [t for t in trials if t.name != args.paired_against]
    against = None
    for trial in trials:
        results = run_trials(evaluator, state, [trial])
        if against is None and trial.name == args.paired_against:
            against = results[0]["result"]
        elif against is not None:
            res = results[0]["result"]
            results[0]["paired_vs"] = {
                "trial": against.name,
                "users": "validation",
                **{key: compare(res, against, metric) for key, metric in (("ndcg", M.NDCG), ("recall", M.RECALL))},
            }
        _write(args, state, reference, results, evaluator, time.perf_counter() - t0, load0, fresh)
        fresh = False  # the reference is one read, counted with the first trial
    return 0


def _results_path(args: argparse.Namespace) -> Path:
    """``hybrid_tuning_<source>[_<tag>].json`` in the output folder: one file per base fit."""
    return Path(args.out_dir) / f"hybrid_tuning_{_source_name(args.source)}{'_' + args.tag if args.tag else ''}.json"


def _source_name(source: str) -> str:
    """``movielens`` / ``synthetic``, or a data folder's name."""
    return Path(source).name or "data"


def _base_fit(evaluator: Evaluator, base: dict) -> TuningState:
    from smartreco.models.served import cf_artifacts, served_cf

    t0 = time.perf_counter()
    cf = cf_artifacts(served_cf().fit(evaluator.train_data))  # the served CF recipe, as evaluate gives it
    print(f"[tune] served CF fitted on the inner train in {time.perf_counter() - t0:.0f} s")
    model = HybridRanker(dataclasses.replace(HybridConfig(), **base), cf_model=cf)
    model.keep_ranking_rows = True
    model.fit(evaluator.train_data)
    print(f"[tune] base hybrid fitted in {time.perf_counter() - t0:.0f} s: {model.fit_info}")
    return TuningState.from_model(evaluator, model)


def _ease(evaluator: Evaluator, out_dir: str, source: str) -> tuple[dict, bool]:
    """EASE (the best peer on test) on the same validation users, so trials read as 'x EASE'; the reference
    an earlier file of this source holds (any tag) is reused when it was scored on as many validation users
    (the same split rule on the same data: no further read). Also: was it scored now?"""
    name = _source_name(source)
    for cache in sorted(Path(out_dir).glob(f"hybrid_tuning_{name}*.json")):
        if cache.stem != f"hybrid_tuning_{name}" and not cache.stem.startswith(f"hybrid_tuning_{name}_"):
            continue
        old = json.loads(cache.read_text())
        same_users = old.get("validation_users") == len(evaluator.eval_rows)
        if same_users and old.get("reference", {}).get("model") == "ease":
            return old["reference"], False
    from smartreco.models.registry import get_model

    res = evaluator.evaluate(get_model("ease"), "ease")
    reference = {
        "model": "ease",
        "ndcg@10": res.metrics["ndcg@10"],
        "recall@10": res.metrics["recall@10"],
        "params": res.params,
    }
    return reference, True


def _write(
    args,
    state: TuningState,
    reference: dict,
    results: list[dict],
    evaluator: Evaluator,
    wall: float,
    load0: float,
    fresh_reference: bool,
) -> None:
    out_dir = Path(args.out_dir)
    path = _results_path(args)
    old = json.loads(path.read_text()) if path.exists() else {}
    trials = {t["trial"]: t for t in old.get("trials", [])}
    for r in results:
        trials[r["trial"]] = {k: v for k, v in r.items() if k != "result"}
    payload = {
        "what": "hybrid ranker-stage trials on a validation split cut inside the test split's train "
        "(test targets never scored); one base fit, each trial retrains the ranker only",
        "tag": args.tag or None,
        "base_fit": {k: v for k, v in dataclasses.asdict(state.config).items() if k != "lgb_params"},
        "base_overrides": {k: getattr(state.config, k) for k in sorted(base_overrides(state.config))},
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
        f"# Hybrid ranker-stage tuning on validation: {args.source}" + (f" (base {args.tag})" if args.tag else ""),
        "",
        payload["what"] + f"; {payload['validation_users']} validation users.",
        "",
        f"Base fit: the HybridConfig defaults with `{payload['base_overrides']}`; a trial's overrides apply on "
        "top of it (a trial without `k_*` keys uses the base fit's pools).",
        "",
        f"Reference on the same users: EASE NDCG@10 {ref['ndcg@10']:.4f}, Recall@10 {ref['recall@10']:.4f}.",
        "",
        "| trial | NDCG@10 | x EASE | Recall@10 | x EASE | paired NDCG diff [95% CI] | rounds | label groups | rows "
        "| overrides |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in payload["trials"]:
        lines.append(
            f"| {t['trial']} | {t['ndcg@10']:.4f} | {t['ndcg@10'] / ref['ndcg@10']:.3f} | "
            f"{t['recall@10']:.4f} | {t['recall@10'] / ref['recall@10']:.3f} | {_paired(t)} | {t['rounds']} | "
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
    reads = len(results) + int(fresh_reference)  # + the EASE reference when it was scored in this run
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


def _paired(trial: dict) -> str:
    """``+0.0012 [-0.0030, +0.0051] vs <trial>`` (a star when the CI is above 0), or ``-``."""
    p = trial.get("paired_vs")
    if not p:
        return "-"
    n = p["ndcg"]
    star = " *" if n["significant"] else ""
    return f"{n['mean_diff']:+.4f} [{n['ci_low']:+.4f}, {n['ci_high']:+.4f}]{star} vs {p['trial']}"


def base_overrides(config: HybridConfig) -> dict:
    """The fields where ``config`` differs from the HybridConfig defaults (lgb_params aside)."""
    default = HybridConfig()
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(HybridConfig)
        if f.name != "lgb_params" and getattr(config, f.name) != getattr(default, f.name)
    }


def _commit() -> str:
    import subprocess

    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
