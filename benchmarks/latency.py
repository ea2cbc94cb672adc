"""Latency of the inference graph: full graph over REST and gRPC at several concurrency levels,
open-loop at a fixed rate, the in-process floor, and one bare Seldon hop measured in the same run.

    .venv-serving/bin/python benchmarks/latency.py [--model-path DIR] [--quick]

Without --model-path it uses the small fake bundle of the tests (tests/integration/graph_fake_bundle.py)
so the numbers measure the serving path, not a model. Writes benchmarks/results/latency.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

import aiohttp  # noqa: E402
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc  # noqa: E402


def pct(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {}
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
    return {
        "n": len(v),
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "mean_ms": statistics.fmean(v),
    }


def body(i: int) -> dict:
    return {"jsonData": {"user_id": str(i % 60), "num_recommendations": 10, "context": {"channel": "web"}}}


async def closed_rest(url: str, concurrency: int, total: int, payload=body) -> dict:
    lat, errors = [], 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        counter = iter(range(total))

        async def worker():
            nonlocal errors
            for i in counter:
                t = time.perf_counter()
                async with s.post(
                    url, data=json.dumps(payload(i)), headers={"Content-Type": "application/json"}
                ) as r:
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
                async with s.post(
                    url, data=json.dumps(body(i)), headers={"Content-Type": "application/json"}
                ) as r:
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


async def in_process_floor(bundle: Path, total: int) -> dict:
    from inference_graph.executor.engine import GraphEngine
    from inference_graph.executor.graph import load_graph, override_parameters
    from inference_graph.executor.transport import InProcessTransport

    g = load_graph()
    override_parameters(g, {"*": {"model_uri": str(bundle)}, "ab-router": {"store": "memory"}})
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


def start_graph(bundle: Path, tmp: Path, env: dict) -> tuple[subprocess.Popen, dict]:
    ready = tmp / "ready.json"
    sets = {"*": {"model_uri": str(bundle)}, "ab-router": {"store": str(tmp / "arms.sqlite")}}
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    import graph_fake_bundle as fake

    tmp = Path(tempfile.mkdtemp(prefix="smartreco-latency-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "integration")])}
    if args.model_path:
        bundle = Path(args.model_path).resolve()
    else:
        bundle = fake.write(tmp / "bundle")
        env.update({k: v for k, v in fake.node_env().items() if k != "PYTHONPATH"})
        os.environ.update({k: v for k, v in fake.node_env().items() if k != "PYTHONPATH"})
    total = 200 if args.quick else 600
    levels = [1, 4, 16]
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": os.getloadavg(),
        },
        "bundle": "fake (tests)" if not args.model_path else str(bundle),
    }
    results["in_process"] = asyncio.run(in_process_floor(bundle, total * 2))
    proc, info = start_graph(bundle, tmp, env)
    try:
        rest = info["rest"] + "/api/v1.0/predictions"
        cf = info["nodes"]["cf-a"]
        hop_url = f"http://127.0.0.1:{cf['http']}/predict"
        hop_payload = lambda i: {"jsonData": {"request": body(i)["jsonData"], "history": ["10", "11"]}}  # noqa: E731
        asyncio.run(closed_rest(rest, 4, 100))  # warm-up
        results["bare_seldon_hop_rest"] = asyncio.run(closed_rest(hop_url, 1, total, hop_payload))
        results["rest"] = [asyncio.run(closed_rest(rest, c, total)) for c in levels]
        results["grpc"] = [asyncio.run(closed_grpc(info["grpc"], c, total)) for c in levels]
        results["open_loop_rest_100rps"] = asyncio.run(
            open_loop_rest(rest, 100.0, 5.0 if args.quick else 15.0)
        )
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    results["machine"]["loadavg_after"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps(results, indent=2))
    (out / "latency.md").write_text(to_markdown(results))
    print(to_markdown(results))


def to_markdown(r: dict) -> str:
    rows = [("in-process floor", r["in_process"]), ("bare Seldon hop (cf-a REST)", r["bare_seldon_hop_rest"])]
    rows += [(f"full graph REST c={x['concurrency']}", x) for x in r["rest"]]
    rows += [(f"full graph gRPC c={x['concurrency']}", x) for x in r["grpc"]]
    rows.append(("full graph REST open-loop 100 req/s", r["open_loop_rest_100rps"]))
    lines = [
        f"# Graph latency ({r['bundle']} bundle)",
        "",
        f"Machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, load average before "
        f"{r['machine']['loadavg_before'][0]:.1f}, after {r['machine']['loadavg_after'][0]:.1f} "
        "(shared machine: other jobs ran at the same time).",
        "",
        "| what | n | p50 ms | p95 ms | p99 ms | req/s | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, x in rows:
        lines.append(
            f"| {name} | {x['n']} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} | {x['p99_ms']:.2f} | "
            f"{x['throughput_rps']:.0f} | {x.get('errors', 0)} |"
        )
    lines += ["", "Targets: open-loop 100 req/s full-graph REST p99 < 50 ms; in-process p99 < 5 ms."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
