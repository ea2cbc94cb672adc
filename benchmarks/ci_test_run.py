"""Record one fresh-clone CI run in benchmarks/results/ci_test_run.{json,md} from its `.ci/run` log.

Why: the project's rule is a default test run (the two pytest calls of scripts/test.sh) under 20 minutes; the
record says, run by run, what it took and where the time went, read from the log rather than typed in. The log
gives the image build time, each pytest call's summary and its 30 slowest phases; what the log cannot know (the
commit, the whole run's wall time, the load average at start and end, the exit code) comes as arguments, as the
script that ran `.ci/run` measured it.

    .venv/bin/python benchmarks/ci_test_run.py --log /tmp/ci/log --commit 0df47a2 --session 10 \\
        --wall 1356 --load-start 2.24 --load-end 3.54 --exit-code 0 [--remark "..."]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY = re.compile(r"^=+ (?P<body>.*?) in (?P<seconds>[0-9.]+)s(?: \([0-9:]+\))? =+$")
ENV_HEADER = re.compile(r"^== (?P<env>.+?) environment \((?P<venv>[^,]+), Python [0-9.]+\): pytest")
IMAGES = re.compile(r"^\[images\] done in (?P<seconds>[0-9.]+) s")
SLOW = re.compile(r"^(?P<seconds>[0-9.]+)s (?P<phase>setup|call|teardown)\s+(?P<test>\S+)")


def parse_log(text: str) -> dict:
    """Images seconds, and per pytest call: environment, seconds, counts, its slowest phases."""
    out: dict = {"images_seconds": None, "pytest": []}
    current: dict | None = None
    in_slowest = False
    for line in text.splitlines():
        if (m := IMAGES.match(line)) and out["images_seconds"] is None:
            out["images_seconds"] = float(m["seconds"])
        elif m := ENV_HEADER.match(line):
            current = {"env": f"{m['env']} ({m['venv']})", "seconds": None, "counts": {}, "slowest": []}
            out["pytest"].append(current)
            in_slowest = False
        elif current is not None and "slowest" in line and line.startswith("="):
            in_slowest = True
        elif current is not None and (m := SUMMARY.match(line)) and re.search(r"\d+ (passed|failed)", m["body"]):
            current["seconds"] = float(m["seconds"])
            current["counts"] = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped)", m["body"])}
            in_slowest = False
        elif current is not None and in_slowest and (m := SLOW.match(line)):
            current["slowest"].append({"seconds": float(m["seconds"]), "phase": m["phase"], "test": m["test"]})
    return out


def to_markdown(record: dict) -> str:
    lines = [
        "# The default test run in CI (`.ci/run` on a fresh clone)",
        "",
        record["what"],
        "",
        "| session | commit | whole `.ci/run` s | images s (`make images`, from scratch) | pytest pipeline env s "
        "| pytest serving env s | pytest total s (min) | load start / end | exit | remark |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for run in record["runs"]:
        calls = run["pytest"]
        cell = [f"{c['seconds']} ({c.get('passed', '?')} passed)" for c in calls] + ["-"] * (2 - len(calls))
        total = run["pytest_total_seconds"]
        load = run["load_average_1m"]
        lines.append(f"| {run.get('session', '')} | {run['commit']} | {run['ci_run_seconds']} "
                     f"| {run['images_seconds']} | {cell[0]} | {cell[1]} | {total} ({total / 60:.1f}) "
                     f"| {load['start']} / {load['end']} "
                     f"| {run['exit_code']} | {run.get('remark', '')} |")
    over = [r for r in record["runs"] if r["pytest_total_seconds"] >= 1200]
    last = record["runs"][-1]
    lines += ["", f"The 20-minute rule: {len(record['runs']) - len(over)} of {len(record['runs'])} recorded runs under "
              f"20 minutes; the latest ({last['commit']}): {last['pytest_total_seconds'] / 60:.1f} min."]
    for run in record["runs"]:
        slow = run.get("slowest_pipeline_env") or []
        if slow:
            lines += ["", f"Slowest phases of the pipeline env at {run['commit']} (pytest --durations):", "", "```"]
            lines += [f"{s['seconds']:8.2f}s {s['phase']:<8} {s['test']}" for s in slow]
            lines += ["```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True, help="the .ci/run log (stdout + stderr)")
    ap.add_argument("--commit", required=True)
    ap.add_argument("--session", type=int, required=True)
    ap.add_argument("--wall", type=float, required=True, help="the whole .ci/run, seconds")
    ap.add_argument("--load-start", type=float, required=True)
    ap.add_argument("--load-end", type=float, required=True)
    ap.add_argument("--exit-code", type=int, required=True)
    ap.add_argument("--remark", default="", help="what else ran on the machine, if anything")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    try:
        parsed = parse_log(args.log.read_text(errors="replace"))
    except OSError as exc:
        raise SystemExit(f"--log {args.log}: cannot read it ({exc.strerror})") from None
    if len(parsed["pytest"]) != 2 or any(c["seconds"] is None for c in parsed["pytest"]):
        raise SystemExit(f"{args.log}: expected two finished pytest calls, found {parsed['pytest']!r:.300}")
    path = args.out / "ci_test_run.json"
    record = json.loads(path.read_text())
    record["runs"] = [r for r in record["runs"] if r["commit"] != args.commit]
    record["runs"].append({
        "commit": args.commit,
        "session": args.session,
        "exit_code": args.exit_code,
        "ci_run_seconds": args.wall,
        "images_seconds": parsed["images_seconds"],
        "pytest": [{"env": c["env"], "seconds": c["seconds"], **c["counts"]} for c in parsed["pytest"]],
        "pytest_total_seconds": round(sum(c["seconds"] for c in parsed["pytest"]), 2),
        "load_average_1m": {"start": args.load_start, "end": args.load_end},
        "remark": args.remark,
        "slowest_pipeline_env": parsed["pytest"][0]["slowest"],
    })
    path.write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "ci_test_run.md").write_text(to_markdown(record))
    print(to_markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
