"""Does a user's next list show the category they have just clicked? The ranker alone vs with the session rule.

    .venv/bin/python benchmarks/session_intent.py [--model-path DIR] [--users 200]

For each of the first ``--users`` training users of the bundle (default: the one the MovieLens training pipeline
deployed, the local deploy record's hybrid ``model_uri``, as ``benchmarks/latency.py``): the history the online
store serves (their last 20 MovieLens ratings, newest first), the list the fused arm ranks for it (CF + CB
candidates, 200 each, the ranker, the category cap 0.5), then three clicks on the most-rated movies of the largest
category the list lacks (unseen by the user). The next list is ranked from the history the graph then serves
(the clicks lead it) twice, at four hours of the day (one per hour bucket of the ranker's context feature): by the
ranker alone (``session_share=0``) and with the session rule (``smartreco/serving/session_intent.py``, default
share 0.2). Counted: lists that gained the clicked category; how many of the list's items changed; the rank call's
CPU time with and without the rule. What the in-process arm leaves out: the online popularity boost of the three
clicks (the combiner's extra candidates) and the answer cache. Writes benchmarks/results/session_intent.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smartreco.data import columns as C  # noqa: E402
from smartreco.features.history import HISTORY_LENGTH  # noqa: E402
from smartreco.serving.session_intent import DEFAULT_SESSION_SHARE  # noqa: E402

HOURS = (3, 9, 15, 21)  # one per 6-hour bucket
N, CANDIDATES, CAP, CLICKS = 10, 200, 0.5, 3
RESULTS = ROOT / "benchmarks" / "results"


def deployed_bundle() -> Path:
    from smartreco.deploy import current_local
    from smartreco.serving.model_uri import resolve_local

    record = current_local()
    if not record:
        raise SystemExit("no local deploy record: run `make demo` (the MovieLens pipeline) or pass --model-path")
    uris = record.get("model_uris", {})
    return resolve_local(uris.get("hybrid-a") or next(iter(uris.values())))


def ranked(rt, user: str, history: list[str], hour: int, **session) -> tuple[list, float]:
    exclude = set(history)
    cf = rt.cf_candidates(user, history, CANDIDATES, exclude)
    cb = rt.cb_candidates(history, CANDIDATES, exclude)
    started = time.thread_time()
    out = rt.rank(user, history, cf, cb, {"hour": hour}, N, exclude, CAP, **session)
    return out, (time.thread_time() - started) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-path", type=Path, help="bundle folder (default: the local deploy record's bundle)")
    ap.add_argument("--users", type=int, default=200)
    args = ap.parse_args()
    from tqdm import tqdm

    from smartreco.data.movielens import load_movielens
    from smartreco.serving.model_uri import load_bundle

    bundle_path = args.model_path or deployed_bundle()
    load_before = os.getloadavg()[0]
    rt = load_bundle(str(bundle_path))
    ml = load_movielens()
    inter = ml.interactions.sort_values(C.TIMESTAMP, kind="stable")
    by_user = inter.groupby(C.USER_ID, sort=False)[C.ITEM_ID].agg(list)
    category = ml.items.set_index(C.ITEM_ID)[C.CATEGORY].astype(str)
    rated = inter[C.ITEM_ID].value_counts()
    by_size = category.value_counts().index.tolist()
    users = [u for u in by_user.index if rt.has_user(str(u))][: args.users]

    cases, plain_ms, rule_ms = [], [], []
    for user in tqdm(users, desc="users"):
        seen = [str(i) for i in by_user[user]]
        history = seen[::-1][:HISTORY_LENGTH]  # newest first, as the online store serves it
        for hour in HOURS:
            first, _ = ranked(rt, str(user), history, hour)
            shown = {r.category for r in first}
            target = next(c for c in by_size if c not in shown)
            listed = {r.item_id for r in first}
            picks = [str(i) for i in rated.index if category.get(i) == target and str(i) not in listed]
            clicks = [i for i in picks if i not in set(seen)][:CLICKS]
            after = [*clicks[::-1], *history][:50]  # the graph's merged history (max_history 50), newest first
            alone, t0 = ranked(rt, str(user), after, hour, session=(), session_share=0.0)
            ruled, t1 = ranked(rt, str(user), after, hour, session=clicks[::-1], session_share=DEFAULT_SESSION_SHARE)
            plain_ms.append(t0)
            rule_ms.append(t1)
            cases.append(
                {
                    "user": str(user),
                    "hour": hour,
                    "category": target,
                    "alone_gained": any(r.category == target for r in alone),
                    "rule_gained": any(r.category == target for r in ruled),
                    "rule_placed": sum(r.session for r in ruled),
                    "alone_changed": len({r.item_id for r in alone} - listed),
                }
            )
    load_after = os.getloadavg()[0]
    total = len(cases)

    def share(key: str, rows=cases) -> float:
        return round(sum(bool(c[key]) for c in rows) / max(len(rows), 1), 4)

    per_hour = {
        h: {
            "alone": share("alone_gained", [c for c in cases if c["hour"] == h]),
            "rule": share("rule_gained", [c for c in cases if c["hour"] == h]),
        }
        for h in HOURS
    }
    result = {
        "bundle": str(bundle_path),
        "manifest_params": json.loads((Path(bundle_path) / "manifest.json").read_text()).get("params", {}),
        "users": len(users),
        "cases": total,
        "hours": list(HOURS),
        "clicks": CLICKS,
        "session_share": DEFAULT_SESSION_SHARE,
        "gained_ranker_alone": share("alone_gained"),
        "gained_with_rule": share("rule_gained"),
        "rule_placed_items_mean": round(statistics.mean(c["rule_placed"] for c in cases), 3),
        "items_changed_by_clicks_mean": round(statistics.mean(c["alone_changed"] for c in cases), 3),
        "per_hour": per_hour,
        "rank_cpu_ms": {
            "alone_p50": round(statistics.median(plain_ms), 3),
            "rule_p50": round(statistics.median(rule_ms), 3),
            "alone_mean": round(statistics.mean(plain_ms), 3),
            "rule_mean": round(statistics.mean(rule_ms), 3),
        },
        "load_average_1m": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python benchmarks/session_intent.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "session_intent.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Session intent: does the next list show the category just clicked?",
        "",
        f"Bundle `{bundle_path}` (params: cf_backend `{result['manifest_params'].get('cf_backend')}`, content "
        f"`{result['manifest_params'].get('content')}`); {len(users)} training users x {len(HOURS)} hours "
        f"({total} cases); {CLICKS} clicks on the most-rated unseen movies of the largest category the list lacked; "
        f"load average {result['load_average_1m']['before']} before / {result['load_average_1m']['after']} after, "
        f"{os.cpu_count()} CPUs. Command: `{result['command']}`.",
        "",
        "| hour | ranker alone: next list gained it | with the session rule |",
        "|---|---|---|",
        *(f"| {h} | {v['alone']:.1%} | {v['rule']:.1%} |" for h, v in per_hour.items()),
        f"| all | {result['gained_ranker_alone']:.1%} | {result['gained_with_rule']:.1%} |",
        "",
        f"Items of the list the clicks changed (ranker alone, mean): {result['items_changed_by_clicks_mean']}; "
        f"items the rule placed (mean): {result['rule_placed_items_mean']}. Rank CPU per call p50: "
        f"{result['rank_cpu_ms']['alone_p50']} ms alone, {result['rank_cpu_ms']['rule_p50']} ms with the rule "
        "(thread CPU of the rank call; not a latency figure: benchmarks/latency.py measures those).",
        "",
    ]
    (RESULTS / "session_intent.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
