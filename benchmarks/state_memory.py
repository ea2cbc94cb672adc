"""Memory of the bounded state this repo keeps per process: the event log's idempotency index and the
response cache, after 100,000 predictions with distinct 128-character request ids and 10,000 feedbacks,
with the default retention driven by a simulated clock (issue #20).

    .venv/bin/python benchmarks/state_memory.py                  # 100k predictions, 10k feedbacks
    .venv/bin/python benchmarks/state_memory.py --predictions 20000 --feedbacks 2000

One process: a FeedbackLog (the event service's backend: one impression per answer, one record per
feedback) and a LocalResponseCache (one entry per answer), driven over ``--hours`` simulated hours with
the log's maintenance run once per simulated minute (what its thread does every 60 s). Measured: the
Python heap (tracemalloc, what the index and cache hold) and RSS, after the run, against a run with
retention off (ids kept forever, no age rotation) and a cache bounded by count only. fsync is off (not
a durability run: benchmarks/feedback_crash.py is). The graph's processes (executor, event service, every
node process) and Redis ``used_memory`` under real traffic: benchmarks/graph_memory.py.
Results go to benchmarks/results/state_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

from smartreco.feedback import FeedbackLog
from smartreco.serving.cache import LocalResponseCache

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024


class SimClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def answer(i: int, n: int = 10) -> dict:
    return {"jsonData": {"user_id": str(i), "recommendations": [
        {"item_id": str(i * 7 + k), "title": f"Movie {k}", "score": 1.0 / (k + 1), "rank": k + 1,
         "explanation": "people with similar taste rated it highly"} for k in range(n)]}}


def _measure(fn) -> tuple[float, float, float]:
    """(Python heap growth MiB, RSS growth MiB, seconds) of ``fn()``; what it returns is kept alive."""
    gc.collect()
    tracemalloc.start()
    base_heap, base_rss = tracemalloc.get_traced_memory()[0], rss_mib()
    started = time.perf_counter()
    keep = fn()
    elapsed = time.perf_counter() - started
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - base_heap
    tracemalloc.stop()
    rss = rss_mib() - base_rss
    del keep
    return round(heap / MIB, 1), round(rss, 1), round(elapsed, 1)


def request_id(i: int) -> str:
    return f"{i:016x}".ljust(128, "r")  # distinct 128-character request ids


def run_log(directory: Path, predictions: int, feedbacks: int, hours: float, bounded: bool) -> dict:
    """The event log: one impression per answer, a feedback every ``predictions // feedbacks`` answers,
    maintenance once per simulated minute (what its thread does every 60 s)."""
    clock = SimClock()
    kw = {} if bounded else {"id_retention_s": 1e12, "max_segment_age_s": None}
    log = FeedbackLog(directory, fsync=False, clock=clock, maintenance_interval_s=None,
                      max_segment_bytes=8 * MIB, **kw)
    step, every_fb = hours * 3600 / predictions, max(1, predictions // feedbacks)

    def drive() -> FeedbackLog:
        next_maint = clock.t + 60
        for i in range(predictions):
            rid, user = request_id(i), str(i % 5000)
            log.append_impression({"request_id": rid, "user_id": user, "variant": "a", "items": ["1", "2", "3"]})
            if i % every_fb == 0:
                log.append_feedback({"feedback_id": f"fb-{i}", "request_id": rid, "user_id": user,
                                     "item_id": "1", "interaction_type": "click"})
            clock.t += step
            if clock.t >= next_maint:
                log.maintain()
                next_maint += 60
        return log

    heap, rss, secs = _measure(drive)
    out = {"state": "event log index", "config": "default retention (24 h ids, hourly segments)" if bounded
           else "retention off", "heap_growth_mib": heap, "rss_growth_mib": rss, "held": len(log),
           "segments": len(list(directory.glob("segment-*.log"))), "seconds": secs}
    log.close()
    return out


def run_cache(predictions: int, hours: float, bounded: bool) -> dict:
    """The response cache: one answer per prediction (5,000 users), simulated time for the TTL."""
    clock = SimClock()
    cache = (LocalResponseCache(ttl_s=30, clock=clock) if bounded
             else LocalResponseCache(ttl_s=1e9, max_entries=10**9, max_bytes=1 << 62, clock=clock))
    step = hours * 3600 / predictions

    def drive() -> LocalResponseCache:
        for i in range(predictions):
            user = str(i % 5000)
            cache.put(user, f"{user}|{request_id(i)[:24]}", answer(i))
            clock.t += step
        return cache

    heap, rss, secs = _measure(drive)
    return {"state": "response cache", "config": "defaults (30 s TTL, 16 MiB)" if bounded
            else "no TTL, no byte bound", "heap_growth_mib": heap, "rss_growth_mib": rss, "held": len(cache),
            "segments": None, "seconds": secs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=100_000)
    ap.add_argument("--feedbacks", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=72.0, help="simulated time the traffic is spread over")
    ap.add_argument("--out", default=str(RESULTS / "state_memory"))
    a = ap.parse_args()
    runs = []
    for bounded in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(run_log(Path(tmp), a.predictions, a.feedbacks, a.hours, bounded))
        runs.append(run_cache(a.predictions, a.hours, bounded))
    res = {"predictions": a.predictions, "feedbacks": a.feedbacks, "simulated_hours": a.hours, "runs": runs,
           "python": platform.python_version(), "cpus": os.cpu_count(),
           "note": "Python heap measured with tracemalloc (what the state holds); RSS includes allocator slack"}
    Path(a.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
    rows = "\n".join(f"| {r['state']} | {r['config']} | {r['heap_growth_mib']} | {r['rss_growth_mib']} | "
                     f"{r['held']:,} | {r['seconds']} |" for r in sorted(runs, key=lambda r: r['state']))
    Path(a.out + ".md").write_text(
        f"# State memory: {a.predictions:,} predictions with distinct 128-character request ids, "
        f"{a.feedbacks:,} feedbacks, {a.hours:g} simulated hours\n\n"
        "`benchmarks/state_memory.py`, one process, simulated clock. Covers the event log's idempotency index "
        "(the event service's memory) and the local response cache; NOT the graph's node processes or Redis "
        "`used_memory` (issue #20's graph-wide benchmark is still to do).\n\n"
        "| state | configuration | Python heap growth MiB | RSS growth MiB | ids / entries held | s |\n"
        f"| --- | --- | --- | --- | --- | --- |\n{rows}\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
