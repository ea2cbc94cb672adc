"""Latency of the inference graph: full graph over REST and gRPC at several concurrency levels,
open-loop at a fixed rate, the in-process floor, and one bare Seldon hop measured in the same run —
for both shapes of the graph: ``full`` (transformer -> router -> combiner over CF + CB: 5 node hops)
and ``fused`` (router -> one HybridRecommender per arm: 2 hops, ``smartreco serve --fused``).

    .venv-serving/bin/python benchmarks/latency.py [--model-path DIR | --fake] [--quick] [--knobs] [--graphs full,fused]
    .venv-serving/bin/python benchmarks/latency.py --in-process [--quick]   # the fused arm's CPU by stage only

The bundle is the one the MovieLens training pipeline deploys (the local deploy record's hybrid
``model_uri``; a ``models:/`` URI resolves through ``SMARTRECO_MODEL_URIS`` as for the graph, or pass
``--model-path``); ``--fake`` uses the tests' small fake bundle (a smoke run of the serving path, not a
model). The graph reads histories from the MovieLens pipeline's Feast feature server
(``SMARTRECO_FEATURE_SERVER``; checked before anything is timed). Every request is distinct: user ids
cycle through the bundle's users, and the context (hour, channel) changes each cycle. ``cpu_breakdown``
runs the fused arm in process under per-stage CPU counters (``time.thread_time``): CF/CB candidates,
the ranker's pool + features, LightGBM scores, explanations (path attributions), JSON (what the REST edge
encodes/decodes) and the rest (graph, node wrapper code). The graph runs as in production: node processes,
the durable impression log (in a temp folder), no response cache. Also: an open-loop rate sweep (the
highest offered rate whose p99 stays under 100 ms), the executor's own per-node call times (where the
time goes), and with --knobs a comparison of node wrapper settings (each run restarts the graph; the
baseline runs first and last to show drift). The 1-minute load average is recorded with every run:
the build machine is shared, so a busy machine's numbers say so. Writes
benchmarks/results/latency.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]
# The in-process measurements run the nodes' code in this process, so it runs as every node process does
# (inference_graph/executor/server.py NODE_ENV_DEFAULTS, manifests/base/platform/node-env.yaml): one
# OpenMP/OpenBLAS thread. Unset, OpenBLAS's second thread spins after each matrix-vector product (measured
# ~7 CPU ms per request of the fused arm on the MovieLens bundle, on top of ~15 in the main thread) and
# competes with the main thread on 2 cores. Set before numpy is imported (OpenBLAS reads it at load).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import aiohttp  # noqa: E402
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc  # noqa: E402

from inference_graph.executor.fusion import MODEL_URI_PARAMS  # noqa: E402


def pct(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {"n": 0, "loadavg_1m": os.getloadavg()[0]}
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
    return {
        "n": len(v),
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "mean_ms": statistics.fmean(v),
        "loadavg_1m": os.getloadavg()[0],  # as the run ends: what else the machine was doing
    }


#: the user ids requests cycle through (set from the bundle in main; the fake bundle's 60 users otherwise)
USERS: list[str] = [str(u) for u in range(60)]
CHANNELS = ("web", "mobile", "email")


_SEQ = itertools.count()


def body(i: int) -> dict:
    """A new request each call, whatever ``i`` (the caller's index): every request of the whole run is distinct
    (user, then hour and channel per cycle over the users)."""
    cycle, user = divmod(next(_SEQ), len(USERS))
    context = {"channel": CHANNELS[cycle % len(CHANNELS)], "hour": (cycle // len(CHANNELS)) % 24}
    return {"jsonData": {"user_id": USERS[user], "num_recommendations": 10, "context": context}}


def bundle_users(bundle: Path, limit: int = 5000) -> list[str]:
    """User ids of the bundle (its training users), in file order: the requests' users."""
    import pyarrow.parquet as pq

    users = bundle / "users.parquet"
    if not users.exists():
        return USERS
    return [str(u) for u in pq.read_table(users).column(0).to_pylist()[:limit]]


def deployed_bundle() -> Path:
    """The bundle of the local deploy record (what `pipeline run training` deployed)."""
    from smartreco.deploy import current_local
    from smartreco.serving.model_uri import ModelUriError, resolve_local

    record = current_local()
    if not record:
        raise SystemExit(
            "no local deploy record (runs/deploy/current.json): run the MovieLens training pipeline "
            "(`smartreco pipeline run training`) or pass --model-path DIR (or --fake)"
        )
    uris = record.get("model_uris", {})
    uri = uris.get("hybrid-a") or next(iter(uris.values()))
    try:
        return resolve_local(uri)
    except ModelUriError as exc:
        raise SystemExit(f"{exc}; or pass --model-path DIR") from None


def check_online_store(user_id: str) -> str:
    """The graph's feature reader must answer with a history for a bundle user, or the benchmark would time
    the cold-start path: the MovieLens pipeline's Feast feature server (as ``scripts/demo.sh`` starts it)."""
    from smartreco import settings
    from smartreco.serving.user_features import load_reader, split_history

    where = settings.FEATURE_SERVER.get()
    hint = (
        f"start the MovieLens pipeline's feature server first, as scripts/demo.sh does: (cd $SMARTRECO_RUNS/feast "
        f"&& .venv/bin/feast serve -h 127.0.0.1 -p 6566 -w 1 --max-requests 0), or set {settings.FEATURE_SERVER.name}"
    )
    try:
        features = load_reader()(user_id)
    except Exception as exc:  # noqa: BLE001 - any failure means no histories: say how to fix it
        raise SystemExit(f"feature reader failed for user {user_id} at {where}: {exc}; {hint}") from None
    if not split_history(features)[1]:
        raise SystemExit(f"the online store at {where} has no history for bundle user {user_id}; {hint}")
    return str(where)


def describe_bundle(bundle: Path) -> dict:
    """What the measured bundle is (its manifest): the README says which bundle every figure used."""
    m = json.loads((bundle / "manifest.json").read_text())
    params = m.get("params", {})
    return {
        "path": str(bundle),
        "source": m.get("source"),
        "created": m.get("created"),
        "n_items": m.get("n_items"),
        "n_users": m.get("n_users"),
        "cf_backend": params.get("cf_backend"),
        "content": params.get("content"),
        "candidates": m.get("candidates"),
        "cf_onnx_scorer": "extra/cf_scorer.onnx" in m.get("files", {}),
    }


#: per-stage CPU counters of cpu_breakdown: (module, class, method, stage); a Booster.predict outside them is
#: split by ``pred_contrib`` (TreeSHAP explanations, where a bundle still asks for them) in the wrapper
STAGES = (
    ("smartreco.serving.runtime", "BundleRuntime", "cf_candidates", "candidates (CF node)"),
    ("smartreco.serving.runtime", "BundleRuntime", "cb_candidates", "candidates (CB node)"),
    ("smartreco.serving.runtime", "BundleRuntime", "popular", "candidates (popularity)"),
    ("smartreco.serving.runtime", "BundleRuntime", "features", "ranker pool + features"),
    ("smartreco.serving.runtime", "BundleRuntime", "attributions", "explanations (path attributions)"),
    ("lightgbm", "Booster", "predict", None),
)


def cpu_breakdown(bundle: Path, total: int) -> dict:
    """Where a request's CPU goes, fused arm in process (one thread: ``time.thread_time`` is exact CPU)."""
    import functools
    import importlib

    from inference_graph.executor.engine import GraphEngine
    from inference_graph.executor.graph import load_graph, override_parameters
    from inference_graph.executor.transport import InProcessTransport

    spent: dict[str, float] = {}
    depth = [0]
    p0 = [0.0]  # whole-process CPU over the measured requests (every thread: a BLAS thread shows here)
    patched = []

    def counting(fn, stage):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            name = stage or ("explanations (TreeSHAP)" if kw.get("pred_contrib") else "LightGBM scores")
            if depth[0]:  # nested inside a counted stage: the outer one owns the time
                return fn(*a, **kw)
            depth[0] += 1
            t = time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.thread_time() - t
                depth[0] -= 1

        return wrapper

    for module, cls_name, method, stage in STAGES:
        cls = getattr(importlib.import_module(module), cls_name)
        original = getattr(cls, method)
        patched.append((cls, method, original))
        setattr(cls, method, counting(original, stage))
    try:
        g = load_graph(fused=True)
        override_parameters(g, {"*": dict.fromkeys(MODEL_URI_PARAMS, str(bundle)), "ab-router": {"store": "memory"}})
        engine = GraphEngine(g, InProcessTransport(g.nodes()))

        async def run() -> float:
            for i in range(30):  # warm-up (loads, first-call costs), not counted
                await engine.predict(body(10_000_000 + i))
            spent.clear()
            json_s = 0.0
            t0, p0[0] = time.thread_time(), time.process_time()
            for i in range(total):
                req = body(i)
                t = time.thread_time()
                payload = json.loads(json.dumps(req))  # what the REST edge decodes
                json_s += time.thread_time() - t
                out = await engine.predict(payload)
                t = time.thread_time()
                json.dumps(out)  # ... and encodes
                json_s += time.thread_time() - t
            spent["JSON (request decode + response encode)"] = json_s
            p0[0] = time.process_time() - p0[0]
            return time.thread_time() - t0

        cpu_s = asyncio.run(run())
    finally:
        for cls, method, original in patched:
            setattr(cls, method, original)
    per = {k: 1000 * v / total for k, v in sorted(spent.items())}
    per["graph + node code (the rest)"] = 1000 * cpu_s / total - sum(per.values())
    return {
        "n": total,
        "cpu_ms_per_request": 1000 * cpu_s / total,
        "by_stage_ms": per,
        "process_cpu_ms_per_request": 1000 * p0[0] / total,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_1m": os.getloadavg()[0],
        "note": "fused arm in process: the REST/Seldon wrapper's share is cpu_ms_per_request (REST c=1) minus this",
    }


async def closed_rest(url: str, concurrency: int, total: int, payload=body) -> dict:
    lat, errors = [], 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        counter = iter(range(total))

        async def worker():
            nonlocal errors
            for i in counter:
                t = time.perf_counter()
                async with s.post(url, data=json.dumps(payload(i)), headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    errors += r.status != 200
                lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {**pct(lat), "throughput_rps": total / wall, "errors": errors, "concurrency": concurrency}


async def closed_grpc(target: str, concurrency: int, total: int) -> dict:
    lat, errors = [], 0
    async with grpc.aio.insecure_channel(target) as ch:
        stub = prediction_pb2_grpc.SeldonStub(ch)
        counter = iter(range(total))

        async def worker():
            nonlocal errors
            for i in counter:
                msg = json_format.ParseDict(body(i), prediction_pb2.SeldonMessage())
                t = time.perf_counter()
                try:
                    await stub.Predict(msg, timeout=10)
                except grpc.RpcError:
                    errors += 1
                lat.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {**pct(lat), "throughput_rps": total / wall, "errors": errors, "concurrency": concurrency}


async def open_loop_rest(url: str, rate: float, seconds: float) -> dict:
    """Requests sent on a fixed schedule whatever the answers do (no coordinated omission)."""
    lat, errors = [], 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def one(i: int, due: float):
            nonlocal errors
            try:
                async with s.post(url, data=json.dumps(body(i)), headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    errors += r.status != 200
            except aiohttp.ClientError:
                errors += 1
            lat.append((time.perf_counter() - due) * 1000)  # from the scheduled time

        tasks, start, n = [], time.perf_counter(), int(rate * seconds)
        for i in range(n):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return {**pct(lat), "throughput_rps": n / wall, "errors": errors, "rate_rps": rate}


async def in_process_floor(bundle: Path, total: int, fused: bool = False) -> dict:
    from inference_graph.executor.engine import GraphEngine
    from inference_graph.executor.graph import load_graph, override_parameters
    from inference_graph.executor.transport import InProcessTransport

    g = load_graph(fused=fused)
    uris = dict.fromkeys(MODEL_URI_PARAMS, str(bundle))
    override_parameters(g, {"*": uris, "ab-router": {"store": "memory"}})
    engine = GraphEngine(g, InProcessTransport(g.nodes()))
    for i in range(50):
        await engine.predict(body(i))
    lat = []
    t0 = time.perf_counter()
    for i in range(total):
        t = time.perf_counter()
        await engine.predict(body(i))
        lat.append((time.perf_counter() - t) * 1000)
    return {**pct(lat), "throughput_rps": total / (time.perf_counter() - t0), "concurrency": 1}


def start_graph(bundle: Path, tmp: Path, env: dict, node_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, dict]:
    ready = tmp / "ready.json"
    ready.unlink(missing_ok=True)
    uris = dict.fromkeys(MODEL_URI_PARAMS, str(bundle))  # "*": where present
    sets = {"*": uris, "ab-router": {"store": str(tmp / "arms.sqlite")}}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inference_graph.executor",
            "--port",
            "0",
            "--grpc-port",
            "0",
            "--cache",
            "off",
            "--set",
            json.dumps(sets),
            "--ready-file",
            str(ready),
            "--log-dir",
            str(tmp / "logs"),
            "--feedback-log",  # impressions reach the event service (request logger) as in production, not runs/
            str(tmp / "feedback"),
            "--no-push",
            "--graph-state",
            str(tmp / "graph-state.sqlite"),
            *node_args,
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while not ready.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit("graph did not start")
        time.sleep(0.2)
    return proc, json.loads(ready.read_text())


def stop_graph(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def node_breakdown(rest_base: str) -> dict:
    """Mean ms per node call as the executor saw it (its Prometheus histogram): where the time goes."""
    import urllib.request

    text = urllib.request.urlopen(rest_base + "/metrics", timeout=10).read().decode()
    pat = r"smartreco_executor_(node|request)_seconds_(sum|count)\{(.*?)\} (\S+)"
    acc: dict[str, dict[str, float]] = {}
    for kind, stat, labels, value in re.findall(pat, text):
        acc.setdefault(f"{kind}:{labels}", {})[stat] = float(value)
    return {
        k: {"mean_ms": 1000 * v["sum"] / v["count"], "n": int(v["count"])}
        for k, v in sorted(acc.items())
        if v.get("count")
    }


#: node wrapper settings compared with --knobs (baseline first and last: the drift of a shared machine)
KNOBS = {
    "baseline (request logger to the event service, threads 4, workers 1, node gRPC on)": (),
    "event service off (no request logger, no impressions)": ("--feedback-log", "off"),
    "node gRPC off (GRPC_WORKERS=0)": ("--grpc-workers", "0"),
    "GUNICORN_WORKERS=2": ("--node-workers", "2"),
    "GUNICORN_THREADS=1 (no keep-alive)": ("--node-threads", "1"),
    "baseline again": (),
}


def tree_cpu_s(pgids: set[int]) -> float:
    """CPU seconds (user + system) used so far by every live process in these process groups: a
    load-independent cost per request, unlike latency on a shared machine."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) in pgids:
            total += int(fields[11]) + int(fields[12])
    return total / tick


SLO_MS = 100.0


def _members(pgids: set[int]):
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) in pgids:
                yield stat.parent.name
        except (OSError, IndexError):
            continue


def run_knobs(bundle: Path, tmp: Path, env: dict, n: int, seconds: float) -> dict:
    out = {}
    for name, args in KNOBS.items():
        proc, info = start_graph(bundle, tmp, env, args)
        try:
            rest = info["rest"] + "/api/v1.0/predictions"
            asyncio.run(closed_rest(rest, 4, 60))  # warm-up
            groups = {proc.pid, *(v["pid"] for v in info["nodes"].values())}
            cpu0 = tree_cpu_s(groups)
            c1 = asyncio.run(closed_rest(rest, 1, n))
            cpu_ms = 1000 * (tree_cpu_s(groups) - cpu0) / n
            out[name] = {
                "args": list(args),
                "closed_c1": c1,
                "cpu_ms_per_request": cpu_ms,  # executor + all node processes, during the c=1 run
                "processes": sum(1 for _ in _members(groups)),
                "open_loop_40rps": asyncio.run(open_loop_rest(rest, 40.0, seconds)),
            }
        finally:
            stop_graph(proc)
    return out


def measure_shape(shape: str, bundle: Path, tmp: Path, env: dict, args, total: int, sweep_s: float) -> dict:
    """Every measurement of one graph shape, on a graph started for it."""
    fused = shape == "fused"
    out: dict = {"in_process": asyncio.run(in_process_floor(bundle, total * 2, fused=fused))}
    proc, info = start_graph(bundle, tmp, env, ("--fused",) if fused else ())
    try:
        rest = info["rest"] + "/api/v1.0/predictions"
        asyncio.run(closed_rest(rest, 4, 100))  # warm-up
        if not fused:
            cf = info["nodes"]["cf-a"]
            hop_url = f"http://127.0.0.1:{cf['http']}/predict"
            hop_payload = lambda i: {"jsonData": {"request": body(i)["jsonData"], "history": ["10", "11"]}}  # noqa: E731
            out["bare_seldon_hop_rest"] = asyncio.run(closed_rest(hop_url, 1, total, hop_payload))
        groups = {proc.pid, *(v["pid"] for v in info["nodes"].values())}
        cpu0 = tree_cpu_s(groups)
        per_node0 = {n: tree_cpu_s({v["pid"]}) for n, v in info["nodes"].items()}
        exec0 = tree_cpu_s({proc.pid})
        c1 = asyncio.run(closed_rest(rest, 1, total))
        # CPU (user + system) of the executor and every node process per request: load-independent cost
        out["cpu_ms_per_request"] = 1000 * (tree_cpu_s(groups) - cpu0) / total
        out["cpu_ms_per_request_by_process"] = {
            "executor": 1000 * (tree_cpu_s({proc.pid}) - exec0) / total,
            **{n: 1000 * (tree_cpu_s({info["nodes"][n]["pid"]}) - c) / total for n, c in per_node0.items()},
        }
        out["rest"] = [c1] + [asyncio.run(closed_rest(rest, c, total)) for c in (4, 16)]
        out["node_breakdown_after_rest"] = node_breakdown(info["rest"])
        out["grpc"] = [asyncio.run(closed_grpc(info["grpc"], c, total)) for c in (1, 4, 16)]
        out["open_loop_rest_100rps"] = asyncio.run(open_loop_rest(rest, 100.0, 5.0 if args.quick else 15.0))
        out["open_loop_sweep"] = [asyncio.run(open_loop_rest(rest, float(r), sweep_s)) for r in args.rates.split(",")]
    finally:
        stop_graph(proc)
    ok = [x["rate_rps"] for x in out["open_loop_sweep"] if x["errors"] == 0 and x["p99_ms"] < SLO_MS]
    out["highest_rate_p99_under_100ms"] = max(ok) if ok else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path", help="bundle folder (default: the local deploy record's bundle)")
    ap.add_argument("--fake", action="store_true", help="the tests' small fake bundle (serving path only)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="only the fused arm in process (CPU by stage, latency floor): no graph, no load; writes "
        "latency_in_process.{json,md}",
    )
    ap.add_argument("--knobs", action="store_true", help="also compare node wrapper settings (restarts)")
    ap.add_argument("--graphs", default="full,fused", help="graph shapes to measure: full, fused")
    ap.add_argument("--rates", default="20,40,60,80,100,120,140,160,180,200", help="open-loop sweep, req/s")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    import graph_fake_bundle as fake

    tmp = Path(tempfile.mkdtemp(prefix="smartreco-latency-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "integration")])}
    if args.fake:
        bundle = fake.write(tmp / "bundle")
        env.update({k: v for k, v in fake.node_env().items() if k != "PYTHONPATH"})
        os.environ.update({k: v for k, v in fake.node_env().items() if k != "PYTHONPATH"})
    else:
        bundle = Path(args.model_path).resolve() if args.model_path else deployed_bundle()
        USERS[:] = bundle_users(bundle)
        feature_server = check_online_store(USERS[0])
    # the in-process measurements get a fresh node state, as the graph's processes do (--graph-state in tmp): the
    # shared runs/ state holds other runs' online history and live popularity (extra candidates, other histories)
    os.environ["SMARTRECO_GRAPH_STATE"] = str(tmp / "graph-state-in-process.sqlite")
    os.environ.pop("SMARTRECO_STATE", None)
    total = 200 if args.quick else 600
    sweep_s = 5.0 if args.quick else 10.0
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": os.getloadavg(),
        },
        "bundle": "fake (tests)" if args.fake else str(bundle),
        "bundle_manifest": None if args.fake else describe_bundle(bundle),
        "feature_server": "fake reader (tests)" if args.fake else feature_server,
        "distinct_requests": f"user ids cycle through {len(USERS)} bundle users; hour and channel change per cycle",
        "quick": args.quick,
        "graphs": {},
    }
    results["cpu_breakdown_fused_in_process"] = cpu_breakdown(bundle, 100 if args.quick else 300)
    if args.in_process:
        results["in_process_fused"] = asyncio.run(in_process_floor(bundle, total * 2, fused=True))
        results["machine"]["loadavg_after"] = os.getloadavg()
        write_results(Path(args.out), "latency_in_process", results, in_process_markdown(results))
        return
    for shape in args.graphs.split(","):
        results["graphs"][shape] = measure_shape(shape, bundle, tmp, env, args, total, sweep_s)
    if "fused" in results["graphs"]:  # the REST edge + Seldon wrapper: fused REST CPU minus the in-process CPU
        cb = results["cpu_breakdown_fused_in_process"]
        rest_cpu = results["graphs"]["fused"]["cpu_ms_per_request"]
        cb["rest_cpu_ms_per_request"] = rest_cpu
        cb["by_stage_ms"]["REST edge + Seldon wrapper (fused REST c=1 CPU - in-process CPU)"] = (
            rest_cpu - cb["cpu_ms_per_request"]
        )
    if args.knobs:
        results["knobs"] = run_knobs(bundle, tmp, env, 200, 5.0 if args.quick else 10.0)
    results["machine"]["loadavg_after"] = os.getloadavg()
    write_results(Path(args.out), "latency", results, to_markdown(results))


def write_results(out: Path, stem: str, results: dict, markdown: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2))
    (out / f"{stem}.md").write_text(markdown)
    print(markdown)


def in_process_markdown(r: dict) -> str:
    """``--in-process``: the fused arm's CPU by stage and its latency floor, no graph processes."""
    m, x = r["machine"], r["in_process_fused"]
    return (
        "\n".join(
            [
                f"# Fused arm in process ({r['bundle']} bundle{', --quick' if r.get('quick') else ''})",
                "",
                f"Machine: {m['cpus']} CPUs, Python {m['python']}, 1-minute load average before "
                f"{m['loadavg_before'][0]:.1f}, after {m['loadavg_after'][0]:.1f}. No graph processes: the arm's "
                "classes called in this process (the in-process floor of `benchmarks/latency.py`).",
                "",
                "Target: in-process p99 < 10 ms (real MovieLens bundle).",
                "",
                *_bundle_lines(r),
                "| what | n | p50 ms | p95 ms | p99 ms | req/s | errors | load 1m |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
                _row("in-process floor (fused arm)", x),
            ]
        )
        + "\n"
    )


def _row(name: str, x: dict) -> str:
    return (
        f"| {name} | {x['n']} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} | {x['p99_ms']:.2f} | "
        f"{x['throughput_rps']:.0f} | {x.get('errors', 0)} | {x['loadavg_1m']:.1f} |"
    )


HEADER = [
    "| what | n | p50 ms | p95 ms | p99 ms | req/s | errors | load 1m |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
]


def _bundle_lines(r: dict) -> list[str]:
    lines = []
    if r.get("bundle_manifest"):
        b = r["bundle_manifest"]
        lines += [
            f"Bundle: source `{b['source']}`, {b['n_items']} items, {b['n_users']} users, CF `{b['cf_backend']}`"
            f" (ONNX scorer: {b['cf_onnx_scorer']}), content `{b['content']}`, created {b['created']}.",
            "",
        ]
    if r.get("distinct_requests"):
        lines += [f"Requests: every one distinct ({r['distinct_requests']}).", ""]
    cb = r.get("cpu_breakdown_fused_in_process")
    if cb:
        lines += [
            f"Where a request's CPU goes (fused arm in process, {cb['n']} requests, "
            f"{cb['cpu_ms_per_request']:.2f} CPU ms/request):",
            "",
            "| stage | CPU ms/request | share |",
            "| --- | --- | --- |",
        ]
        total = cb.get("rest_cpu_ms_per_request", cb["cpu_ms_per_request"])
        lines += [f"| {k} | {v:.2f} | {100 * v / total:.0f} % |" for k, v in cb["by_stage_ms"].items()]
        lines += [
            "",
            f"Shares of {total:.2f} CPU ms per request ("
            f"{'fused REST c=1, all processes' if 'rest_cpu_ms_per_request' in cb else 'in process'}).",
        ]
        if "process_cpu_ms_per_request" in cb:
            lines += [
                "",
                f"Stages are the main thread's CPU; the whole process used "
                f"{cb['process_cpu_ms_per_request']:.2f} CPU ms per request over the same requests "
                f"(OMP_NUM_THREADS={cb['omp_num_threads']}, as the node processes run; load 1m "
                f"{cb['loadavg_1m']:.1f} at the end).",
            ]
        lines += ["", cb["note"] + ".", ""]
    return lines


def to_markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# Graph latency ({r['bundle']} bundle{', --quick' if r.get('quick') else ''})",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, 1-minute load average before "
        f"{m['loadavg_before'][0]:.1f}, after {m['loadavg_after'][0]:.1f} (`load 1m` is per run: what else the "
        "machine was doing). Graph: node processes (`seldon-core-microservice`), impression log on (fsync'd, "
        "temp folder), response cache off.",
        "",
        "Targets: open-loop 100 req/s fused-graph REST p99 < 50 ms; in-process p99 < 10 ms (real MovieLens bundle).",
        "",
        *_bundle_lines(r),
        "## Summary",
        "",
        "| graph | node hops | CPU ms/request | in-process p99 ms | REST c=1 p50 / p99 ms | 100 req/s open-loop p99 ms "
        "| highest rate with p99 < 100 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for shape, g in r["graphs"].items():
        best = g.get("highest_rate_p99_under_100ms")
        c1, ol = g["rest"][0], g["open_loop_rest_100rps"]
        lines.append(
            f"| {shape} | {2 if shape == 'fused' else 5} | {g['cpu_ms_per_request']:.1f} | "
            f"{g['in_process']['p99_ms']:.2f} | {c1['p50_ms']:.1f} / {c1['p99_ms']:.1f} | {ol['p99_ms']:.1f} "
            f"({ol['errors']} errors) | {f'{best:.0f} req/s' if best else 'none tried'} |"
        )
    for shape, g in r["graphs"].items():
        rows = [("in-process floor", g["in_process"])]
        if "bare_seldon_hop_rest" in g:
            rows.append(("bare Seldon hop (cf-a REST)", g["bare_seldon_hop_rest"]))
        rows += [(f"REST c={x['concurrency']}", x) for x in g["rest"]]
        rows += [(f"gRPC c={x['concurrency']}", x) for x in g["grpc"]]
        rows.append(("REST open-loop 100 req/s", g["open_loop_rest_100rps"]))
        rows += [(f"open-loop sweep {x['rate_rps']:.0f} req/s", x) for x in g.get("open_loop_sweep", [])]
        lines += ["", f"## {shape} graph", "", *HEADER, *(_row(name, x) for name, x in rows)]
        lines += [
            "",
            "CPU ms per request by process (c=1 run): "
            + ", ".join(f"{k} {v:.1f}" for k, v in g["cpu_ms_per_request_by_process"].items()),
        ]
        lines += [
            "",
            "Executor's view, mean ms per node call (after the REST runs):",
            "",
            "| call | n | mean ms |",
            "| --- | --- | --- |",
        ]
        for k, v in g["node_breakdown_after_rest"].items():
            lines.append(f"| {k} | {v['n']} | {v['mean_ms']:.2f} |")
    if r.get("knobs"):
        lines += [
            "",
            "## Node wrapper settings (each restarts the graph; c=1 n=200, open loop 40 req/s)",
            "",
            "| setting | processes | CPU ms/req | c=1 p50 | c=1 p99 | 40 req/s p50 | 40 req/s p99 | errors | load 1m |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, k in r["knobs"].items():
            c1, ol = k["closed_c1"], k["open_loop_40rps"]
            lines.append(
                f"| {name} | {k['processes']} | {k['cpu_ms_per_request']:.1f} | {c1['p50_ms']:.1f} | "
                f"{c1['p99_ms']:.1f} | {ol['p50_ms']:.1f} | {ol['p99_ms']:.1f} | {c1['errors'] + ol['errors']} | "
                f"{ol['loadavg_1m']:.1f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
