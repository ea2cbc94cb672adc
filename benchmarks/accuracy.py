"""Accuracy benchmark: every registered model and the peers in ONE run on the ARCHITECTURE §5 protocol.

    .venv/bin/python benchmarks/accuracy.py --source movielens [--models ease,als,...]

Writes benchmarks/results/accuracy_<source>.json (the `smartreco evaluate` JSON plus machine/timing
info) and .md (metrics table, fit time, ms/user, paired bootstrap CI of each model vs the best peer).
A model whose module cannot be imported is skipped with a printed warning and listed under "skipped".
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smartreco.data.sources import load_source  # noqa: E402
from smartreco.errors import SmartRecoError  # noqa: E402
from smartreco.evaluation.report import markdown_summary  # noqa: E402
from smartreco.evaluation.run import run_evaluation, write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="movielens", help="movielens, synthetic or a folder PATH")
    parser.add_argument("--models", default=None, help="comma-separated names (default: all registered)")
    parser.add_argument("--out-dir", default=str(RESULTS))
    parser.add_argument("--hybrid-config", action="append", default=[], metavar="KEY=VALUE",
                        help="override a HybridConfig field (repeatable), recorded in the result")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else None
    label = args.source if args.source in ("movielens", "synthetic") else Path(args.source).name
    t0, cpu0, load0 = time.perf_counter(), _cpu_seconds(), _load()
    try:
        data = load_source(args.source)
        from smartreco.cli.evaluate import parse_overrides

        result = run_evaluation(data, names, hybrid_config=parse_overrides(args.hybrid_config))
    except SmartRecoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    payload = result.to_json()
    payload["benchmark"] = {
        "wall_seconds": round(wall, 1),
        # the machine is shared: CPU seconds and the load average say how much of the wall time was waiting
        "cpu_seconds": round(cpu, 1),
        "load_average_1m": {"start": load0, "end": _load()},
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "command": "benchmarks/accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out_dir = Path(args.out_dir)
    total_reads = _ledger(out_dir, label, payload)
    json_path = write_json(payload, out_dir / f"accuracy_{label}.json")
    md = markdown_summary(payload, title=f"Accuracy benchmark: {label}")
    overrides = payload["protocol"].get("hybrid_config_overrides")
    if overrides:
        md += f"\nThe hybrid ran with these HybridConfig overrides (not the defaults): `{overrides}`.\n"
    md += (f"\nTest-split reads recorded for `{label}` in `{LEDGER}` (every benchmark run appends its count): "
           f"**{total_reads}** in total, this run included.\n")
    md += (f"\nWall time {wall:.0f} s for the whole run (load, split, fit incl. validation tuning, scoring, "
           f"bootstrap) on {os.cpu_count()} CPU cores; {cpu:.0f} CPU seconds used by the run; 1-minute load "
           f"average {payload['benchmark']['load_average_1m']['start']} at start, "
           f"{payload['benchmark']['load_average_1m']['end']} at end (shared machine).\n")
    (out_dir / f"accuracy_{label}.md").write_text(md, encoding="utf-8")
    print(md)
    print(f"wrote {json_path} and {json_path.with_suffix('.md')}")
    return 0


LEDGER = "test_reads_ledger.jsonl"


def _ledger(out_dir: Path, label: str, payload: dict) -> int:
    """Append this run's reads of the held-out targets to the ledger; the total for ``label`` so far."""
    import json
    import subprocess

    reads = payload.get("protocol", {}).get("target_reads", {})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    entry = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": label,
             "split": reads.get("split", "test"), "count": int(reads.get("count", 0)),
             "configurations": reads.get("configurations", []), "commit": commit}
    path = out_dir / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    total = sum(e["count"] for e in lines if e["source"] == label and e["split"] == "test")
    payload["test_reads_total"] = {"source": label, "ledger": LEDGER, "count": total}
    return total


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and its children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
