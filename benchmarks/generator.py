"""Scale benchmark of the synthetic generator: wall time per stage, peak memory, output size.

    .venv/bin/python benchmarks/generator.py                       # 1M users x 10M items x 50M events
    .venv/bin/python benchmarks/generator.py --users 10000 --items 100000 --interactions 500000

Data goes to /tmp (deleted afterwards unless --keep); results to benchmarks/results/generator.{json,md}.
The machine is shared, so the load average at start and end is recorded next to the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from smartreco.data import synthetic
from smartreco.data.synthetic import INTERACTION_SCHEMA, ITEM_SCHEMA, USER_SCHEMA, generate_to_parquet

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram = psutil.virtual_memory().total
    except ImportError:  # pragma: no cover - psutil comes with the pipeline extra's dependencies
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram / 2**30, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "load_average": list(os.getloadavg()),
    }


class RssSampler(threading.Thread):
    """Peak resident memory sampled every 0.2 s (ru_maxrss is the kernel's exact high-water mark)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._done.wait(0.2):
            self.peak = max(self.peak, proc.memory_info().rss)

    def stop(self) -> None:
        self._done.set()
        self.join()


def check_output(out: Path, manifest: dict) -> dict:
    """Cheap checks on the written files: schema of each table, row counts from parquet footers."""
    checks = {}
    schemas = {"items": ITEM_SCHEMA, "users": USER_SCHEMA, "interactions": INTERACTION_SCHEMA}
    for name, schema in schemas.items():
        parts = sorted((out / name).glob("part-*.parquet"))
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        first = pq.read_schema(parts[0])
        checks[name] = {
            "parts": len(parts),
            "rows_in_footers": rows,
            "rows_match_manifest": rows == manifest["tables"][name]["rows"],
            "schema_is_canonical": first.remove_metadata().equals(schema),
        }
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=10_000_000)
    ap.add_argument("--interactions", type=int, default=50_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--chunk-rows", type=int, default=synthetic.DEFAULT_CHUNK_ROWS)
    ap.add_argument("--out", default="/tmp/smartreco-generator-bench")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--results", default=str(RESULTS), help="folder for generator.json / generator.md")
    args = ap.parse_args(argv)

    out = Path(args.out)
    env = machine()
    sampler = RssSampler()
    sampler.start()
    t0 = time.perf_counter()
    manifest = generate_to_parquet(
        out, args.users, args.items, args.interactions, args.seed, args.chunk_rows,
        overwrite=True, progress=not args.no_progress,
    )
    wall = time.perf_counter() - t0
    sampler.stop()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    checks = check_output(out, manifest)
    n = args.interactions
    result = {
        "benchmark": "synthetic generator, generate_to_parquet (streaming, zstd parquet parts)",
        "sizes": manifest["sizes"],
        "seed": args.seed,
        "chunk_rows": args.chunk_rows,
        "wall_seconds": round(wall, 2),
        "stage_seconds": {k: round(v, 2) for k, v in manifest["seconds"].items()},
        "interactions_per_second": round(n / manifest["seconds"]["interactions"]),
        "peak_rss_gib": round(peak_kib / 2**20, 3),
        "peak_rss_sampled_gib": round(sampler.peak / 2**30, 3),
        "output_bytes": {k: v["bytes"] for k, v in manifest["tables"].items()},
        "output_gib": round(sum(v["bytes"] for v in manifest["tables"].values()) / 2**30, 3),
        "parts": {k: len(v["parts"]) for k, v in manifest["tables"].items()},
        "checks": checks,
        "machine": env,
        "load_average_end": list(os.getloadavg()),
        "measured_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)

    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "generator.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / "generator.md").write_text(markdown(result))
    print(json.dumps({k: result[k] for k in ("sizes", "wall_seconds", "stage_seconds", "peak_rss_gib")}))
    ok = all(c["rows_match_manifest"] and c["schema_is_canonical"] for c in checks.values())
    return 0 if ok else 1


def markdown(r: dict) -> str:
    s, m = r["sizes"], r["machine"]
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in r["stage_seconds"].items())
    checks = ", ".join(
        f"{k}: {c['rows_in_footers']:,} rows in {c['parts']} parts"
        + ("" if c["rows_match_manifest"] and c["schema_is_canonical"] else " (CHECK FAILED)")
        for k, c in r["checks"].items()
    )
    return (
        "# Synthetic generator at scale\n\n"
        f"`benchmarks/generator.py` — {s['users']:,} users x {s['items']:,} items x {s['interactions']:,} "
        f"interactions, seed {r['seed']}, {r['chunk_rows']:,} rows per part.\n\n"
        "| metric | value |\n| --- | --- |\n"
        f"| wall time | {r['wall_seconds']:.1f} s |\n"
        f"| stages | {stages} |\n"
        f"| interactions / s | {r['interactions_per_second']:,} |\n"
        f"| peak RSS (ru_maxrss) | {r['peak_rss_gib']:.2f} GiB |\n"
        f"| output (zstd parquet) | {r['output_gib']:.2f} GiB |\n\n"
        f"Checks: {checks}; every part has the canonical schema.\n\n"
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, "
        f"numpy {m['numpy']}, pyarrow {m['pyarrow']}. Shared with other jobs: load average "
        f"{m['load_average'][0]:.1f} at start, {r['load_average_end'][0]:.1f} at end, so wall times are "
        "upper bounds.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
