"""A node closing an idle keep-alive connection races the executor's next call on it (the rollout's 503 suspect,
benchmarks/results/rehearsal_rollout.md). Not a CI test: a measurement on this machine.

A real node wrapper (``seldon-core-microservice`` of .venv-serving: gunicorn's gthread worker, 1 worker x 4 threads,
no gRPC server, as manifests/base/platform/node-env.yaml runs it) serving a trivial echo model, with
``GUNICORN_KEEPALIVE`` = 2 (the wrapper's default) or 120 (the manifests' value now). ``--clients`` callers, each
with its own pooled connection through the executor stand-in's client (inference_graph/executor/transport.py
RestTransport), reuse that connection after an idle time drawn uniformly from [``--idle-lo``, ``--idle-hi``] s, so
reuses land before, at and after the node's close. gthread closes an expired keep-alive connection after its poll
returns, even if a request arrived meanwhile, and the client may send before it has seen the node's FIN; neither
aiohttp nor Seldon's Go client re-sends a POST, so such a call fails. ``--block-ms`` makes the client's event loop
busy in steps of that many ms (a sleeping callback, no CPU), as an executor loop serving other requests on a loaded
machine is: the FIN waits that long to be seen.

Usage (needs .venv-serving; about ``--seconds`` x 4 plus start-up)::

    .venv-serving/bin/python benchmarks/node_keepalive_race.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference_graph.executor import processes  # noqa: E402 - after the path
from inference_graph.executor.graph import GraphNodeSpec  # noqa: E402 - after the path
from inference_graph.executor.processes import NodeProcess  # noqa: E402 - after the path
from inference_graph.executor.transport import NodeCallError, RestTransport  # noqa: E402 - after the path
from smartreco.provenance import checkout_label  # noqa: E402 - after the path

ECHO = "class Echo:\n    def predict(self, X, features_names=None, meta=None):\n        return X\n"


NODE = GraphNodeSpec(name="echo", type="MODEL", class_name="echo_node.Echo", image="echo")


def start_node(workdir: Path, keepalive: int) -> NodeProcess:
    """The echo node as the local executor starts a node (processes.start_node: the same wrapper and environment),
    1 worker x 4 threads, no gRPC server, the given keep-alive; returned once healthy."""
    node = processes.start_node(NODE, workdir / f"logs-{keepalive}", threads=4, grpc_workers=0,
                                extra_env={"GUNICORN_KEEPALIVE": str(keepalive), "PYTHONPATH": str(workdir)})
    try:
        processes.wait_healthy([node], timeout_s=60.0)
    except BaseException:
        node.stop()
        raise
    return node


async def drive(port: int, clients: int, seconds: float, lo: float, hi: float, block_s: float) -> dict:
    msg = {"jsonData": {"x": 1}, "meta": {}}
    reuses: list[tuple[float, str]] = []  # (idle s before the call, "ok" or the error)
    end = time.monotonic() + seconds

    async def busy() -> None:
        while block_s:
            time.sleep(block_s)  # blocks the loop, not the CPU
            await asyncio.sleep(0)

    async def client() -> None:
        transport = RestTransport({"echo": f"http://127.0.0.1:{port}"}, pool=4)
        try:
            await transport.call(NODE, "predict", msg)  # opens the one connection this client reuses
            while time.monotonic() < end:
                idle = random.uniform(lo, hi)
                await asyncio.sleep(idle)
                try:
                    await transport.call(NODE, "predict", msg)
                    reuses.append((idle, "ok"))
                except NodeCallError as exc:
                    reuses.append((idle, str(exc).split(": ", 1)[-1][:100]))
        finally:
            await transport.close()

    loop_busy = asyncio.ensure_future(busy())
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        loop_busy.cancel()
    failed = [(round(i, 3), e) for i, e in reuses if e != "ok"]
    return {
        "calls": len(reuses),
        "failed": len(failed),
        "errors": sorted({e for _, e in failed}),
        "failed_idle_s": sorted(i for i, _ in failed),
    }


def write_md(path: Path, out: dict) -> None:
    lines = [
        "# Node keep-alive close vs the executor's next call (rollout 503 suspect, issue #19)",
        "",
        f"{out['machine']}. Commit {out['commit']}, {out['started_utc']}. Versions: {out['versions']}. "
        "Not a CI test: a measurement.",
        "",
        f"A `seldon-core-microservice` echo node (gthread, 1 worker x 4 threads, GRPC_WORKERS 0); {out['clients']} "
        f"callers through the executor stand-in's RestTransport, each reusing its one pooled connection after an "
        f"idle time uniform in [{out['idle_s'][0]}, {out['idle_s'][1]}] s, for {out['seconds']} s per row. "
        "'client loop busy' = the caller's event loop blocked in steps of that many ms (no CPU), as a loaded "
        "executor's is.",
        "",
        "| GUNICORN_KEEPALIVE s | client loop busy ms | calls | failed | errors | idle s of the failed calls "
        "(min-max) | load before | load after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in out["runs"]:
        idle = r["failed_idle_s"]
        span = f"{idle[0]}-{idle[-1]}" if idle else "-"
        lines.append(
            f"| {r['keepalive_s']} | {r['block_ms']} | {r['calls']} | {r['failed']} | {'; '.join(r['errors']) or '-'} "
            f"| {span} | {r['load_before']} | {r['load_after']} |"
        )
    lines += ["", f"Load average {out['load_before']} before, {out['load_after']} after."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds per (keep-alive, busy) row")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--idle-lo", type=float, default=1.8)
    ap.add_argument("--idle-hi", type=float, default=2.3)
    ap.add_argument("--keepalives", default="2,120", help="GUNICORN_KEEPALIVE values, comma separated")
    ap.add_argument("--block-ms", default="0,10", help="client loop busy steps (ms), comma separated")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/node_keepalive_race.json")
    args = ap.parse_args(argv)
    out: dict = {
        "benchmark": "node_keepalive_race",
        "machine": "2 CPU cores (24 GiB) shared with other sessions' jobs (the load averages say how loaded)",
        "commit": checkout_label(ROOT),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "versions": {p: metadata.version(p) for p in ("seldon-core", "gunicorn", "aiohttp")},
        "clients": args.clients,
        "idle_s": [args.idle_lo, args.idle_hi],
        "seconds": args.seconds,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="keepalive-race-") as tmp:
        workdir = Path(tmp)
        (workdir / "echo_node.py").write_text(ECHO)
        for keepalive in (int(k) for k in args.keepalives.split(",")):
            for block_ms in (float(b) for b in args.block_ms.split(",")):
                node = start_node(workdir, keepalive)
                try:
                    load = round(os.getloadavg()[0], 2)
                    row = asyncio.run(drive(node.http_port, args.clients, args.seconds, args.idle_lo, args.idle_hi,
                                            block_ms / 1000))  # fmt: skip
                finally:
                    node.stop(grace_s=15.0)
                row = {"keepalive_s": keepalive, "block_ms": block_ms, **row, "load_before": load,
                       "load_after": round(os.getloadavg()[0], 2)}  # fmt: skip
                print(json.dumps({k: v for k, v in row.items() if k != "failed_idle_s"}), flush=True)
                out["runs"].append(row)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    write_md(args.out.with_suffix(".md"), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
