"""Memory of every process of a running graph (issue #20): the executor, the event service and each node
process (with its gunicorn workers and gRPC server), and Redis ``used_memory`` when ``--state redis://``
puts the shared state there, after N predictions with distinct 128-character request ids (``meta.puid``)
and N/10 feedbacks (each about an answer just served, with its own id).

    .venv-serving/bin/python benchmarks/graph_memory.py                       # 100k predictions, 10k feedbacks
    .venv-serving/bin/python benchmarks/graph_memory.py --predictions 5000 --fused
    .venv-serving/bin/python benchmarks/graph_memory.py --redis               # shared state in a private Redis

The graph is the real local one (``python -m inference_graph.executor``, node processes, the event service it
starts, the default local cache and SQLite node state, or ``--redis``) over the tests' small fake bundle: what
is measured is the state the serving path keeps per request, not a model. Memory per process tree: anonymous
PSS (``/proc/PID/smaps_rollup`` Pss_Anon + Pss_Shmem, summed over the tree: its physical heap, a copy-on-write
break counted once, other processes' library pages left out), with USS, PSS and RSS alongside, after a warm-up
(baseline) and at every tenth of the run, so the table shows growth and its trend. A forked gunicorn worker or
gRPC server that runs a full garbage collection touches every object it inherited and un-shares its parent's
heap at once (a one-time step of up to the parent's heap, ~29 MiB per node measured); inference_graph/base.py
freezes the inherited objects in every forked child, which removed those steps. The processes run on the real
clock: retention windows (24 h served answers and event ids, 7 d effect keys) never expire during a run of
minutes, so the growth measured is what the whole run's ids cost while all of them are still held (an upper
bound for that many requests in one window); retention driven by a simulated clock is
benchmarks/state_memory.py's (one process, the same structures).
Results: benchmarks/results/graph_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

import aiohttp  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MIB = 1024 * 1024
LIMIT_MB = 50.0


def request_id(i: int) -> str:
    return f"bench-{i:012d}-".ljust(128, "x")  # distinct 128-character ids (the puid limit)


# ------------------------------------------------------------------------------------------ /proc
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _mem_kib(pid: int) -> dict[str, int]:
    """KiB of one process (zeros when it is gone): ``anon`` = Pss_Anon + Pss_Shmem, its share of the
    anonymous memory it maps. Summed over a process tree that is the tree's physical heap exactly: anonymous
    pages are shared only through fork inside the tree, so a copy-on-write break counts once (USS counts it
    twice: the child's copy and the parent's now-private original; RSS not at all), and library pages that
    other processes on the machine map are left out (they move PSS, not anonymous PSS)."""
    fields = {"Pss_Anon:": 0, "Pss_Shmem:": 0, "Private_Clean:": 0, "Private_Dirty:": 0, "Pss:": 0, "Rss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(None, 1)[0] if line else ""
            if key in fields:
                fields[key] = int(line.split()[1])
    except OSError:
        pass
    return {"anon": fields["Pss_Anon:"] + fields["Pss_Shmem:"],
            "uss": fields["Private_Clean:"] + fields["Private_Dirty:"], "pss": fields["Pss:"], "rss": fields["Rss:"]}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def snapshot(executor_pid: int, nodes: dict[str, int]) -> dict[str, dict[str, float]]:
    """Anonymous PSS / USS / PSS / RSS MiB per graph process tree: the executor, the event service, each node."""
    kids = _children()
    groups: dict[str, list[int]] = {name: _tree(pid, kids) for name, pid in nodes.items()}
    in_nodes = {p for pids in groups.values() for p in pids}
    events = [p for p in _tree(executor_pid, kids) if p != executor_pid and p not in in_nodes
              and "smartreco.events" in _cmdline(p)]
    if events:
        groups["event-service"] = _tree(events[0], kids)
    groups["executor"] = [executor_pid]
    out = {}
    for name, pids in groups.items():
        total = dict.fromkeys(("anon", "uss", "pss", "rss"), 0)
        for p in pids:
            for key, kib in _mem_kib(p).items():
                total[key] += kib
        out[name] = {f"{k}_mib": round(v / 1024, 1) for k, v in total.items()} | {"processes": len(pids)}
    return out


def redis_used_mib(url: str | None) -> float | None:
    if not url:
        return None
    import redis

    return round(redis.Redis.from_url(url).info("memory")["used_memory"] / MIB, 2)


# ------------------------------------------------------------------------------------------- graph
def start_graph(work: Path, fused: bool, state: str | None) -> tuple[subprocess.Popen, dict]:
    import graph_fake_bundle as fake

    from inference_graph.executor.fusion import MODEL_URI_PARAMS

    bundle = fake.write(work / "bundle")
    overrides = {"*": dict.fromkeys(MODEL_URI_PARAMS, str(bundle)),
                 "ab-router": {"store": str(work / "arms.sqlite"), "mode": "thompson"}}
    ready = work / "ready.json"
    cmd = [sys.executable, "-m", "inference_graph.executor", "--port", "0", "--grpc-port", "0", "--no-push",
           "--feedback-log", str(work / "feedback"), "--ready-file", str(ready), "--set", json.dumps(overrides),
           "--log-dir", str(work / "logs"), "--graph-state", str(work / "graph-state" / "state.sqlite")]
    if fused:
        cmd.append("--fused")
    if state:
        cmd += ["--state", state]
    env = {**os.environ, **fake.node_env()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(work / "executor.stderr", "ab"))  # noqa: SIM115
    deadline = time.monotonic() + 300
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"executor did not start: {(work / 'executor.stderr').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(0.2)
    return proc, json.loads(ready.read_text())


async def drive(url: str, start: int, count: int, feedback_every: int, concurrency: int, stats: dict) -> None:
    """``count`` predictions (ids start..start+count) and a feedback after every ``feedback_every``-th."""
    ids = iter(range(start, start + count))
    headers = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in ids:
            user = str(i % 5000)
            body = {"jsonData": {"user_id": user, "num_recommendations": 10}, "meta": {"puid": request_id(i)}}
            async with session.post(url + "/api/v1.0/predictions", json=body, headers=headers) as r:
                answer = await r.json()
                stats[r.status] = stats.get(r.status, 0) + 1
            if r.status != 200 or i % feedback_every:
                continue
            item = answer["jsonData"]["recommendations"][0]["item_id"]
            fb = {"request": {"jsonData": {"user_id": user}}, "response": answer, "reward": 1.0,
                  "truth": {"jsonData": {"item_id": item, "interaction_type": "click", "feedback_id": f"fb-{i}"}}}
            async with session.post(url + "/api/v1.0/feedback", json=fb, headers=headers) as r:
                await r.read()
                key = f"feedback {r.status}"
                stats[key] = stats.get(key, 0) + 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


def _total(snap: dict, key: str) -> float:
    return round(sum(v[key] for v in snap.values()), 1)


def write_results(a: argparse.Namespace, base: dict, after: dict, base_redis: float | None, state: str | None,
                  trend: list[dict], stats: dict, done: int, seconds: float, finished: bool) -> dict:
    """The JSON + MD results so far (rewritten at every tenth: a run stopped early keeps what it measured)."""
    per = {name: {"baseline_anon_mib": base[name]["anon_mib"], "after_anon_mib": after[name]["anon_mib"],
                  "anon_growth_mib": round(after[name]["anon_mib"] - base[name]["anon_mib"], 1),
                  "uss_growth_mib": round(after[name]["uss_mib"] - base[name]["uss_mib"], 1),
                  "pss_growth_mib": round(after[name]["pss_mib"] - base[name]["pss_mib"], 1),
                  "rss_growth_mib": round(after[name]["rss_mib"] - base[name]["rss_mib"], 1),
                  "processes": after[name]["processes"]} for name in base if name in after}
    growth = round(sum(p["anon_growth_mib"] for p in per.values()), 1)
    redis_growth = None if state is None else round(trend[-1]["redis_used_mib"] - base_redis, 2)
    total_mb = growth * MIB / 1e6 + (redis_growth or 0) * MIB / 1e6
    res = {
        "predictions": done, "predictions_asked": a.predictions, "finished": finished,
        "feedback_every": a.feedback_every, "warmup": a.warmup, "concurrency": a.concurrency,
        "graph": "fused" if a.fused else "five-node",
        "state": "redis" if state else "local (SQLite node state, segment event log, local cache)",
        "requests": {str(k): v for k, v in stats.items()}, "seconds": round(seconds, 1),
        "predictions_per_s": round(done / seconds, 1), "processes": per, "anon_growth_mib_total": growth,
        "redis_used_memory_growth_mib": redis_growth, "growth_mb_total": round(total_mb, 1),
        "limit_mb": LIMIT_MB, "within_limit": total_mb < LIMIT_MB, "trend": trend,
        "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "clock": "real (retention windows never expire during the run: every id of the run is still held)",
    }
    Path(a.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
    rows = "\n".join(f"| {n} | {p['processes']} | {p['baseline_anon_mib']} | {p['after_anon_mib']} | "
                     f"{p['anon_growth_mib']} | {p['uss_growth_mib']} | {p['pss_growth_mib']} | "
                     f"{p['rss_growth_mib']} |" for n, p in sorted(per.items()))
    trend_rows = "\n".join(f"| {t['predictions']:,} | {t['anon_growth_mib']} | {t['uss_growth_mib']} | "
                           f"{t['pss_growth_mib']} | {t['redis_used_mib']} | {t['seconds']} |" for t in trend)
    load = ", ".join(f"{x:.1f}" for x in res["load_average_at_end"])
    Path(a.out + ".md").write_text(
        f"# Graph memory: {done:,} predictions with distinct 128-character request ids, "
        f"{stats.get('feedback 200', 0):,} feedbacks ({res['graph']} graph, {res['state']})\n\n"
        f"{'' if finished else f'**Stopped early: {done:,} of the {a.predictions:,} asked.** '}"
        f"`benchmarks/graph_memory.py --predictions {a.predictions}{' --fused' if a.fused else ''}"
        f"{' --redis' if a.redis else ''}`: every graph process, anonymous-memory PSS growth after a "
        f"{a.warmup:,}-prediction warm-up. Total growth **{res['growth_mb_total']} MB** (limit {LIMIT_MB:g} MB: "
        f"{'within' if res['within_limit'] else 'OVER'}); Redis used_memory growth: {redis_growth}. "
        f"{res['predictions_per_s']} predictions/s over {res['seconds']} s with {a.concurrency} clients on "
        f"{res['cpus']} CPUs, load average at the end {load} (a busy shared machine). Requests: "
        f"{res['requests']}. Real clock: retention never expired during the run, so every id is still held.\n\n"
        "| process | processes | baseline anon PSS MiB | after anon PSS MiB | anon PSS growth MiB | USS growth MiB "
        "| PSS growth MiB | RSS growth MiB |\n"
        "|---|---|---|---|---|---|---|---|\n" + rows + "\n\n"
        "| predictions | anon PSS growth MiB | USS growth MiB | PSS growth MiB | Redis used MiB | seconds |\n"
        "|---|---|---|---|---|---|\n" + trend_rows + "\n"
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=100_000)
    ap.add_argument("--feedback-every", type=int, default=10, help="one feedback per this many predictions")
    ap.add_argument("--warmup", type=int, default=1000, help="predictions before the baseline snapshot")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--fused", action="store_true", help="router over two fused arms (default: the five-node graph)")
    ap.add_argument("--redis", action="store_true", help="shared state in a private redis-server (--state)")
    ap.add_argument("--out", default=str(RESULTS / "graph_memory"))
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the graph (finally) on a plain kill too
    with tempfile.TemporaryDirectory(prefix="graph-memory-") as tmp:
        work = Path(tmp)
        redis = None
        if a.redis:
            from smartreco.testing.redis_server import RedisServer

            redis = RedisServer(work / "redis", appendfsync="everysec")
            redis.start()
        state = redis.url if redis else None
        proc, info = start_graph(work, a.fused, state)
        try:
            nodes = {name: d["pid"] for name, d in info["nodes"].items()}
            url, stats = info["rest"], {}
            asyncio.run(drive(url, 10**9, a.warmup, a.feedback_every, a.concurrency, stats))
            base, base_redis = snapshot(proc.pid, nodes), redis_used_mib(state)
            trend, done, started = [], 0, time.perf_counter()
            step = max(1, a.predictions // 10)
            stats = {}
            while done < a.predictions:
                n = min(step, a.predictions - done)
                asyncio.run(drive(url, done, n, a.feedback_every, a.concurrency, stats))
                done += n
                snap = snapshot(proc.pid, nodes)
                trend.append({"predictions": done,
                              "anon_growth_mib": round(_total(snap, "anon_mib") - _total(base, "anon_mib"), 1),
                              "uss_growth_mib": round(_total(snap, "uss_mib") - _total(base, "uss_mib"), 1),
                              "pss_growth_mib": round(_total(snap, "pss_mib") - _total(base, "pss_mib"), 1),
                              "redis_used_mib": redis_used_mib(state), "seconds": round(time.perf_counter() -
                                                                                        started, 1)})
                print(json.dumps(trend[-1]), flush=True)
                res = write_results(a, base, snap, base_redis, state, trend, stats, done,
                                    time.perf_counter() - started, done >= a.predictions)
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            if redis is not None:
                redis.stop()
    print(json.dumps({k: res[k] for k in ("predictions", "growth_mb_total", "within_limit", "seconds")}))


if __name__ == "__main__":
    main()
