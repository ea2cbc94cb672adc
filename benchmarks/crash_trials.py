"""The loop and the report every SIGKILL benchmark of the feedback path shares (event service, executor):
command-line options, one trial per kill with a random kill point, the totals, the verdict, and the
JSON + Markdown result with the machine and its load average. Each benchmark passes only its trial."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = (
    "concurrency", "kill_after", "sent", "acked", "recovered", "missing", "impressions", "truncated_bytes",
    "corrupt", "stored_twice", "acks_per_s", "ack_ms_p50", "ack_ms_p99", "resent", "resent_not_duplicate",
)  # fmt: skip
CLEAN = ("missing", "corrupt", "stored_twice", "resent_not_duplicate", "after_resend_stored_twice")
EXPLAINED = [
    "`recovered` = this trial's feedback ids in the reopened log (>= acked: some were durable but",
    "the client never saw the 200). `resent_not_duplicate` = acked ids that a retry after the",
    "restart did not recognise (must be 0).",
]

#: one trial: (workdir, n_feedback, kill_after, concurrency) -> the crash check's result
Trial = Callable[[Path, int, int, int], dict[str, Any]]


def parse_args(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--feedback", type=int, default=1500, help="feedback requests per trial (upper bound)")
    ap.add_argument("--concurrency", default="1,8,32", help="client threads, cycled over the trials")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(RESULTS))
    return ap.parse_args()


def run_trials(args: argparse.Namespace, workdir: Path, trial: Trial) -> list[dict[str, Any]]:
    """``args.trials`` kills, each after a random number of acks in [feedback/10, feedback/2)."""
    rng = np.random.default_rng(args.seed)
    levels = [int(c) for c in args.concurrency.split(",")]
    trials = []
    for t in range(args.trials):
        kill_after = int(rng.integers(args.feedback // 10, args.feedback // 2))
        r = trial(workdir / f"trial-{t}", args.feedback, kill_after, levels[t % len(levels)])
        r["missing"] = len(r.pop("missing_acked"))
        r["resent_not_duplicate"] = len(r.pop("resent_acked_before_not_duplicate"))
        trials.append(r)
        print(json.dumps({k: r[k] for k in KEYS}))
    return trials


def write_results(args: argparse.Namespace, name: str, title: str, what: str, trials: list[dict[str, Any]],
                  started: float, notes: list[str]) -> None:
    """``<results>/<name>.{json,md}`` and the verdict on stdout."""
    totals = {k: int(sum(t[k] for t in trials)) for k in ("sent", "acked", "recovered", "missing", "impressions")}
    ok = all(t["killed"] and t["after_resend_all_sent_present"] and not any(t[k] for k in CLEAN) for t in trials)
    out = {
        "benchmark": name,
        "what": what,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "params": {"trials": args.trials, "feedback_per_trial": args.feedback,
                   "concurrency": [int(c) for c in args.concurrency.split(",")], "seed": args.seed},
        "totals": totals,
        "all_acked_recovered_and_log_clean": ok,
        "wall_s": round(time.perf_counter() - started, 1),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "trials": trials,
    }
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    machine = out["machine"]
    lines = [
        f"# {title}",
        "",
        f"{what}; {args.trials} trials, up to {args.feedback} feedback each, Python {machine['python']}, "
        f"{machine['cpus']} CPUs, load average at the end {machine['loadavg_at_end']}. "
        f"All acked feedback recovered and log clean: **{ok}**.",
        "",
        "| " + " | ".join(KEYS) + " |",
        "|" + "---|" * len(KEYS),
        *("| " + " | ".join(str(t[k]) for k in KEYS) + " |" for t in trials),
        "",
        f"Totals: sent {totals['sent']}, acked {totals['acked']}, recovered {totals['recovered']}, "
        f"missing acked {totals['missing']}, impressions {totals['impressions']}.",
        "",
        *EXPLAINED,
        *notes,
    ]
    (res / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: out[k] for k in ("totals", "all_acked_recovered_and_log_clean", "wall_s")}))
