"""Wall time of the training pipeline run locally (kfp.local) on MovieLens, step by step.

    .venv/bin/python benchmarks/pipeline_runtime.py [--runner auto|docker|subprocess] [--sample-users N]

Writes benchmarks/results/pipeline_runtime.{json,md}: total seconds, per-step seconds (from each step's
output folder: first file written to executor_output.json), runner, cores and the load average at the
start and end (the machine is shared: a high load average means the numbers are pessimistic).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def step_seconds(run_dir: Path, started: float) -> dict[str, float]:
    """Per task: executor_output.json mtime minus the previous task's (kfp.local runs tasks one at a time),
    in completion order; the first one counts from the pipeline's start."""
    ends = sorted((p.stat().st_mtime, p.parent.name) for p in run_dir.glob("*/executor_output.json"))
    out, prev = {}, started
    for end, task in ends:
        out[task] = round(end - prev, 1)
        prev = end
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runner", default="auto")
    ap.add_argument("--sample-users", type=int, default=0)
    args = ap.parse_args()
    load0 = os.getloadavg()
    t0 = time.time()
    cmd = [str(ROOT / ".venv/bin/smartreco"), "pipeline", "run", "training", "--local", "--runner", args.runner,
           "--json", "--sample-users", str(args.sample_users), "--param", "deploy_target=local"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    total = time.time() - t0
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    run = json.loads(proc.stdout)
    gate = json.loads(Path(run["artifacts"]["summary/gate"]).read_text())
    result = {
        "dataset": "movielens ml-latest-small" + (f" ({args.sample_users} users)" if args.sample_users else ""),
        "runner": run["runner"], "runner_reason": run["runner_reason"], "cores": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load0], "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "total_seconds": round(total, 1), "pipeline_seconds": run["seconds"],
        "steps_seconds": step_seconds(Path(run["run_dir"]), t0), "promoted": gate["promoted"],
        "gate_reasons": gate["reasons"], "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline_runtime.json").write_text(json.dumps(result, indent=2))
    rows = "\n".join(f"| {k} | {v} |" for k, v in result["steps_seconds"].items())
    (RESULTS / "pipeline_runtime.md").write_text(
        f"# Training pipeline runtime ({result['dataset']})\n\n"
        f"runner **{result['runner']}** ({result['runner_reason']}), {result['cores']} cores, load average "
        f"{result['load_average_start'][0]} at start / {result['load_average_end'][0]} at end\n\n"
        f"total **{result['total_seconds']} s** (pipeline {result['pipeline_seconds']} s); promoted: "
        f"{result['promoted']}\n\n| step | seconds |\n| --- | ---: |\n{rows}\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
