"""What the served explanations cost and how they compare with TreeSHAP, on the real bundle's shown items.

For every bundle user (twice: two contexts) this ranks as ``BundleRuntime.rank`` does (the ranker's pool and
features, LightGBM scores, the category cap) and explains the shown rows both ways: the path attributions the
runtime serves (:mod:`smartreco.models.path_attributions`) and LightGBM's TreeSHAP (``pred_contrib``, what it
served before), grouped per component. It reports the CPU of each (``time.thread_time``, one thread, as the node
processes run), whether both add up to the score, and how often the dominant component (the one the sentence
names, :func:`smartreco.explain.reasons.dominant_component`) is the same. Writes
benchmarks/results/explanations.{json,md}.

    .venv-serving/bin/python benchmarks/explanations.py --histories hist.json [--model-path DIR]

``--histories``: the users' features captured from the feature server (written when missing, as
``benchmarks/serving_answers.py`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests" / "integration")]
os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the node processes run (see benchmarks/latency.py)


def main() -> int:
    import latency as L
    import numpy as np
    import serving_answers as A

    from smartreco.explain.reasons import dominant_component
    from smartreco.models import hybrid_features as F
    from smartreco.serving.model_uri import load_bundle
    from smartreco.serving.runtime import diversify
    from smartreco.serving.user_features import split_history

    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path", help="bundle folder (default: the local deploy record's bundle)")
    ap.add_argument("--histories", required=True, help="captured features (JSON); written when missing")
    ap.add_argument("--n", type=int, default=10, help="shown items per request")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    path = Path(args.model_path).resolve() if args.model_path else L.deployed_bundle()
    users = L.bundle_users(path)
    hist_file = Path(args.histories)
    if not hist_file.exists():
        A.capture(users, hist_file)
    captured = json.loads(hist_file.read_text())
    bundle = load_bundle(str(path))
    bundle.attributions(np.zeros((0, len(F.FEATURE_NAMES)), dtype=np.float32))  # the table, built once at load
    load_before = os.getloadavg()[0]
    shap_s = path_s = 0.0
    requests = rows = same = 0
    worst_sum = {"path": 0.0, "treeshap": 0.0}
    for context in ({"channel": "web", "hour": 9}, {"channel": "mobile", "hour": 21}):
        for user in users:
            _, history = split_history(captured.get(user) or {})
            if not history:
                continue
            uc = bundle.features(user, history, context, set(history), [])
            if len(uc.items) == 0:
                continue
            pred = bundle.booster.predict(uc.features, num_threads=1)
            order = np.lexsort((uc.items, -pred))
            chosen = order[diversify(bundle.categories[uc.items[order]], args.n, 0.5)]
            x = np.ascontiguousarray(uc.features[chosen])
            t = time.thread_time()
            path_parts = bundle.attributions(x)
            path_s += time.thread_time() - t
            t = time.thread_time()
            contrib = bundle.booster.predict(x, pred_contrib=True, num_threads=1)
            shap_parts = F.group_contributions(contrib)
            shap_s += time.thread_time() - t
            table = bundle._leaf_attributions
            worst_sum["path"] = max(
                worst_sum["path"], float(np.abs(sum(path_parts.values()) + table.expected - pred[chosen]).max())
            )
            worst_sum["treeshap"] = max(worst_sum["treeshap"], float(np.abs(contrib.sum(axis=1) - pred[chosen]).max()))
            for j in range(len(chosen)):
                a = dominant_component({k: float(v[j]) for k, v in path_parts.items()})
                b = dominant_component({k: float(v[j]) for k, v in shap_parts.items()})
                same += a == b
            requests += 1
            rows += len(chosen)
    result = {
        "bundle": str(path),
        "bundle_manifest": L.describe_bundle(path),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m": [load_before, os.getloadavg()[0]],
        },
        "requests": requests,
        "shown_rows": rows,
        "cpu_ms_per_request": {"path_attributions": 1000 * path_s / requests, "treeshap": 1000 * shap_s / requests},
        "largest_sum_error": worst_sum,
        "same_dominant_component": same / rows,
    }
    c = result["cpu_ms_per_request"]
    md = "\n".join(
        [
            f"# Explanations of the shown items ({path} bundle)",
            "",
            f"Machine: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, 1-minute load "
            f"average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (CPU time of one thread: "
            "`time.thread_time`).",
            "",
            f"{requests} requests (every bundle user with a history, two contexts), {rows} shown items "
            f"({args.n} per request, category cap 0.5), ranked as `BundleRuntime.rank` does.",
            "",
            "| explanation | CPU ms per request | largest \\|sum - score\\| |",
            "| --- | --- | --- |",
            f"| path attributions (served, per-leaf table) | {c['path_attributions']:.3f} | {worst_sum['path']:.1e} |",
            f"| TreeSHAP (`pred_contrib`, served before) | {c['treeshap']:.3f} | {worst_sum['treeshap']:.1e} |",
            "",
            f"Same dominant component (the one the explanation sentence names): "
            f"{100 * result['same_dominant_component']:.1f} % of the shown items.",
            "",
        ]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "explanations.json").write_text(json.dumps(result, indent=2))
    (out / "explanations.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
