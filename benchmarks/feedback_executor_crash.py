"""Crash benchmark of the REAL executor: SIGKILL ``python -m inference_graph.executor`` during a feedback
load, several times; count sent / acknowledged / recovered feedback and check the log reads cleanly.

    .venv-serving/bin/python benchmarks/feedback_executor_crash.py               # 6 kills x 1500 feedback
    .venv-serving/bin/python benchmarks/feedback_executor_crash.py --trials 2 --feedback 300

Each trial starts the executor with in-process nodes (fake bundle from tests/integration, so the number
measures the feedback path, not a model) and the event service it starts next to the graph (its own
process, the event log's single writer): the CF node appends each feedback through the event service
(fsync before its 200) before the router and the transformer apply theirs, so the executor's 200 means
durable. ``--concurrency`` keep-alive HTTP clients on loopback (one prediction every 5 feedbacks: its
impression reaches the log through the request logger, best effort), SIGKILL of the executor after a
random number of acks (the event service then stops on its parent's death, finishing queued appends),
the log reopened (torn-tail recovery) and read as a dataset, the executor restarted on the same log and
every sent id retried (acked ones must be duplicates). Bounded. The SIGKILL of the event service itself
is ``benchmarks/event_service_crash.py``. Results: benchmarks/results/feedback_executor_crash.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

import graph_fake_bundle as fake  # noqa: E402

from smartreco.feedback.executor_crashcheck import run_executor_crash  # noqa: E402

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
        bundle = fake.write(Path(tmp) / "bundle")
        overrides = {"*": {"model_uri": str(bundle)}, "ab-router": {"store": str(Path(tmp) / "arms.sqlite")}}
        for t in range(args.trials):
            kill_after = int(rng.integers(args.feedback // 10, args.feedback // 2))
            r = run_executor_crash(
                Path(tmp) / f"trial-{t}",
                n_feedback=args.feedback,
                kill_after=kill_after,
                concurrency=levels[t % len(levels)],
                overrides=overrides,
                env=fake.node_env(),
            )
            r["missing"] = len(r.pop("missing_acked"))
            r["resent_not_duplicate"] = len(r.pop("resent_acked_before_not_duplicate"))
            trials.append(r)
            print(json.dumps({k: r[k] for k in KEYS}))
    totals = {k: int(sum(t[k] for t in trials)) for k in ("sent", "acked", "recovered", "missing", "impressions")}
    clean = ("missing", "corrupt", "stored_twice", "resent_not_duplicate", "after_resend_stored_twice")
    ok = all(t["killed"] and t["after_resend_all_sent_present"] and not any(t[k] for k in clean) for t in trials)
    out = {
        "benchmark": "feedback_executor_crash",
        "what": "SIGKILL of `python -m inference_graph.executor --in-process` (nodes append feedback through the "
        "event service it starts) during a loopback feedback load",
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "params": {
            "trials": args.trials,
            "feedback_per_trial": args.feedback,
            "concurrency": levels,
            "seed": args.seed,
        },
        "totals": totals,
        "all_acked_recovered_and_log_clean": ok,
        "wall_s": round(time.perf_counter() - started, 1),
        "trials": trials,
    }
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / "feedback_executor_crash.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Executor crash benchmark (SIGKILL during feedback load)",
        "",
        f"{out['what']}; {args.trials} trials, up to {args.feedback} feedback each, "
        f"Python {out['machine']['python']}, {out['machine']['cpus']} CPUs. "
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
        "restart did not recognise (must be 0). ack latency includes the walk through the graph's feedback",
        "nodes and the event service's fsync (group commit). `impressions` come from the request logger",
        "(asynchronous, best effort as Seldon's): the last few before a kill may be lost, never a feedback.",
    ]
    (res / "feedback_executor_crash.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: out[k] for k in ("totals", "all_acked_recovered_and_log_clean", "wall_s")}))


if __name__ == "__main__":
    main()
