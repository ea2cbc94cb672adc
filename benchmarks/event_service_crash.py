"""Crash benchmark of the EVENT SERVICE: SIGKILL ``python -m smartreco.events`` during a feedback load,
several times; count sent / acknowledged / recovered feedback and check the log reads cleanly.

    .venv-serving/bin/python benchmarks/event_service_crash.py               # 6 kills x up to 1500 feedback
    .venv-serving/bin/python benchmarks/event_service_crash.py --trials 2 --feedback 300

Each trial starts the service on a fresh log, drives ``--concurrency`` keep-alive ``EventClient``
threads on loopback (feedback with unique ids; every 5th id also posts a logged answer as Seldon's
request logger would, so impressions are in the log too), kills it with SIGKILL after a random number
of acks, reopens the log (torn-tail recovery), reads it as a dataset, restarts the service on the same
log and sends every sent id again (acked ones must be duplicates). Bounded, loopback only.
Results: benchmarks/results/event_service_crash.{json,md}.
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

from smartreco.events.crashcheck import run_event_service_crash

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = (
    "concurrency", "kill_after", "sent", "acked", "recovered", "missing", "impressions", "truncated_bytes",
    "corrupt", "stored_twice", "acks_per_s", "ack_ms_p50", "ack_ms_p99", "resent", "resent_not_duplicate",
)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--feedback", type=int, default=1500, help="feedback requests per trial (upper bound)")
    ap.add_argument("--concurrency", default="1,8,32", help="client threads, cycled over the trials")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    levels = [int(c) for c in args.concurrency.split(",")]
    trials = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(args.trials):
            kill_after = int(rng.integers(args.feedback // 10, args.feedback // 2))
            r = run_event_service_crash(
                Path(tmp) / f"trial-{t}", n_feedback=args.feedback, kill_after=kill_after,
                concurrency=levels[t % len(levels)],
            )  # fmt: skip
            r["missing"] = len(r.pop("missing_acked"))
            r["resent_not_duplicate"] = len(r.pop("resent_acked_before_not_duplicate"))
            trials.append(r)
            print(json.dumps({k: r[k] for k in KEYS}))
    totals = {k: int(sum(t[k] for t in trials)) for k in ("sent", "acked", "recovered", "missing", "impressions")}
    clean = ("missing", "corrupt", "stored_twice", "resent_not_duplicate", "after_resend_stored_twice")
    ok = all(t["killed"] and t["after_resend_all_sent_present"] and not any(t[k] for k in clean) for t in trials)
    out = {
        "benchmark": "event_service_crash",
        "what": "SIGKILL of `python -m smartreco.events` during a loopback feedback load (EventClient)",
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "params": {"trials": args.trials, "feedback_per_trial": args.feedback, "concurrency": levels,
                   "seed": args.seed},  # fmt: skip
        "totals": totals,
        "all_acked_recovered_and_log_clean": ok,
        "wall_s": round(time.perf_counter() - started, 1),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "trials": trials,
    }
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / "event_service_crash.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Event service crash benchmark (SIGKILL during feedback load)",
        "",
        f"{out['what']}; {args.trials} trials, up to {args.feedback} feedback each, "
        f"Python {out['machine']['python']}, {out['machine']['cpus']} CPUs (shared machine). "
        f"All acked feedback recovered and log clean: **{ok}**.",
        "",
        "| " + " | ".join(KEYS) + " |",
        "|" + "---|" * len(KEYS),
        *("| " + " | ".join(str(t[k]) for k in KEYS) + " |" for t in trials),
        "",
        f"Totals: sent {totals['sent']}, acked {totals['acked']}, recovered {totals['recovered']}, "
        f"missing acked {totals['missing']}, impressions {totals['impressions']}.",
        "",
        "`recovered` = this trial's feedback ids in the reopened log (>= acked: some were durable but",
        "the client never saw the 200). `resent_not_duplicate` = acked ids that a retry after the",
        "restart did not recognise (must be 0). Ack latency includes the fsync (group commit) and HTTP.",
    ]
    (res / "event_service_crash.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: out[k] for k in ("totals", "all_acked_recovered_and_log_clean", "wall_s")}))


if __name__ == "__main__":
    main()
