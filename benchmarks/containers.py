"""Container benchmark: image build time and size, container start-up, per-step import time, the training
pipeline's wall time by runner (subprocess vs docker, with the evaluation metrics of both), and the graph's
latency with nodes as processes vs as containers.

    .venv/bin/python benchmarks/containers.py                      # every section; images as they are
    .venv/bin/python benchmarks/containers.py --from-scratch       # remove images, bases and wheelhouses first
    .venv/bin/python benchmarks/containers.py --sections graph     # only some: build,steps,pipeline,graph

Per pipeline step (components/<step>/component.py) it times `docker run` of the pipeline image that imports
the component module and every module its function body imports (what the step pays before doing work).
``pipeline`` runs `smartreco pipeline run training --local` once per runner on MovieLens (``--sample-users``,
``--epochs``; each run in a fresh runs folder, the MiniLM cache shared); its subprocess metrics are the
reference tests/e2e/test_containers_pipeline.py compares the docker run with. ``graph`` serves the graph
of the SeldonDeployment with the tests' fake bundle (the serving path, not a model) and sends sequential
REST requests, nodes as processes then as containers. Sections not run keep their previous results in
benchmarks/results/containers.json."""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smartreco.containers import IMAGES, build_images  # noqa: E402
from smartreco.containers.base import BASE_REPO  # noqa: E402
from smartreco.containers.engine import docker, image_label, require_engine  # noqa: E402
from smartreco.containers.spec import HASH_LABEL  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "containers.json"
SECTIONS = ("build", "steps", "pipeline", "graph")
#: the pipeline parity configuration (tests/e2e/test_containers_pipeline.py runs the docker side of it)
PARITY = {"sample_users": 100, "epochs": 3}
STACK = ["torch", "pytorch_lightning", "sentence_transformers", "feast", "mlflow", "kfp", "evidently"]


def _timed_run(image: str, code: str, repeats: int) -> dict:
    """Median wall time of `docker run --rm` and the in-container import time the code prints."""
    walls, inner = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = docker(["run", "--rm", "--network", "none", image, "python", "-c", code], timeout=600)
        walls.append(time.perf_counter() - t0)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("T=")]
        if lines:
            inner.append(float(lines[-1][2:]))
    return {"docker_run_s": round(statistics.median(walls), 2),
            "import_s": round(statistics.median(inner), 2) if inner else None, "repeats": repeats}


def _import_code(modules: list[str]) -> str:
    return ("import time, importlib; t = time.perf_counter()\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(f'T={time.perf_counter() - t:.3f}')")


def step_imports(path: Path) -> list[str]:
    """Modules a component needs: the module itself plus the imports inside its function bodies."""
    tree = ast.parse(path.read_text())
    mods = [".".join(path.relative_to(ROOT).with_suffix("").parts)]
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                mods += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.append(node.module)
    return list(dict.fromkeys(mods))


def serving_startup(image: str, repeats: int) -> dict:
    """Seconds from `docker run` to the first 'pong' of a tiny node, as the non-root user."""
    node = Path(tempfile.mkdtemp(prefix="bench-node-"))
    (node / "Echo.py").write_text("class Echo:\n    def predict(self, X, names=None):\n        return X\n")
    node.chmod(0o755)
    (node / "Echo.py").chmod(0o644)
    times = []
    try:
        for i in range(repeats):
            ports = []
            for _ in range(3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    ports.append(s.getsockname()[1])
            name = f"smartreco-bench-{os.getpid()}-{i}"
            t0 = time.perf_counter()
            docker(["run", "-d", "--name", name, "--network", "host", "-v", f"{node}:/node:ro", "-w", "/node",
                    "-e", "MODEL_NAME=Echo", "-e", f"PREDICTIVE_UNIT_HTTP_SERVICE_PORT={ports[0]}",
                    "-e", f"PREDICTIVE_UNIT_GRPC_SERVICE_PORT={ports[1]}",
                    "-e", f"PREDICTIVE_UNIT_METRICS_SERVICE_PORT={ports[2]}", image])
            try:
                while time.perf_counter() - t0 < 60:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/health/ping", timeout=2) as r:
                            if r.read() == b"pong":
                                times.append(time.perf_counter() - t0)
                                break
                    except OSError:
                        time.sleep(0.05)
            finally:
                docker(["rm", "-f", name], check=False)
    finally:
        shutil.rmtree(node, ignore_errors=True)
    return {"run_to_health_ping_s": round(statistics.median(times), 2) if times else None, "repeats": repeats}


def from_scratch() -> None:
    for spec in IMAGES.values():
        docker(["image", "rm", "-f", spec.tag], check=False)
    bases = docker(["images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPO]).stdout.split()
    for ref in bases:
        docker(["image", "rm", "-f", ref], check=False)
    docker(["image", "prune", "-f"], check=False)
    shutil.rmtree(ROOT / "build" / "images", ignore_errors=True)
    shutil.rmtree(ROOT / "build" / "base", ignore_errors=True)


# ------------------------------------------------------------------------------------ pipeline by runner
def evaluation_metrics(run: dict) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} from a `pipeline run --json` answer's evaluation report."""
    report = Path(run["artifacts"]["evaluate/report"]) / "evaluation.json"
    models = json.loads(report.read_text())["models"]
    keys = ("ndcg@10", "recall@10", "precision@10", "map@10", "hitrate@10", "coverage")
    return {m: {k: round(float(v[k]), 5) for k in keys if isinstance(v.get(k), (int, float))}
            for m, v in models.items()}


def run_training(runner: str, sample_users: int, epochs: int, runs: Path) -> dict:
    """`smartreco pipeline run training --local --runner RUNNER` in its own runs folder; wall time, steps, metrics."""
    cmd = [str(ROOT / ".venv" / "bin" / "smartreco"), "pipeline", "run", "training", "--local", "--runner", runner,
           "--json", "--sample-users", str(sample_users), "--param", f"epochs={epochs}",
           "--param", "deploy_target=local",
           "--param", f"embedding_cache_dir={ROOT / 'runs' / 'embeddings'}"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["SMARTRECO_RUNS"] = str(runs)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{runner} run failed:\n{proc.stderr[-3000:]}")
    run = json.loads(proc.stdout)
    containers = [ln.split("[pipeline] ", 1)[1] for ln in proc.stderr.splitlines() if "[pipeline] step " in ln]
    return {"runner": run["runner"], "wall_s": round(wall, 1), "pipeline_s": run["seconds"],
            "load_average_start": round(load0, 2), "load_average_end": round(os.getloadavg()[0], 2),
            "steps": run.get("steps") or {}, "container_log_lines": containers,
            "metrics": evaluation_metrics(run)}


def pipeline_by_runner(sample_users: int, epochs: int) -> dict:
    out: dict = {"config": {"sample_users": sample_users, "epochs": epochs, "source": "movielens",
                            "embedding_cache": "runs/embeddings (shared, warm)"}, "runs": {}}
    for runner in ("subprocess", "docker"):
        runs = Path(tempfile.mkdtemp(prefix=f"bench-{runner}-", dir="/tmp"))
        try:
            print(f"[bench] training pipeline, {runner} runner ...", file=sys.stderr)
            out["runs"][runner] = run_training(runner, sample_users, epochs, runs)
        finally:
            shutil.rmtree(runs, ignore_errors=True)
    sub, dock = out["runs"]["subprocess"]["metrics"], out["runs"]["docker"]["metrics"]
    out["max_abs_metric_diff"] = max(abs(sub[m][k] - dock[m][k]) for m in sub for k in sub[m] if k in dock.get(m, {}))
    out["docker_over_subprocess_s"] = round(out["runs"]["docker"]["wall_s"] - out["runs"]["subprocess"]["wall_s"], 1)
    return out


# ------------------------------------------------------------------------------------ graph latency
def _serve(mode: str, tmp: Path, bundle: Path) -> tuple[subprocess.Popen, dict]:
    ready = tmp / f"ready-{mode}.json"
    ready.unlink(missing_ok=True)  # a previous round's
    store = tmp / f"arms-{mode}"  # a store the node's user (10001 in a container) can write
    store.mkdir(exist_ok=True)
    store.chmod(0o777)
    overrides = {"*": {"model_uri": str(bundle)}, "ab-router": {"store": str(store / f"{mode}.sqlite")}}
    args = [str(ROOT / ".venv-serving" / "bin" / "python"), "-m", "inference_graph.executor", "--port", "0",
            "--grpc-port", "0", "--set", json.dumps(overrides), "--cache", "off", "--no-push",
            "--feedback-log", str(tmp / f"feedback-{mode}"), "--log-dir", str(tmp / f"logs-{mode}"),
            "--ready-file", str(ready)]
    if mode == "containers":
        args += ["--containers", "--node-ports", "free"]
    env = {**os.environ, "SMARTRECO_RUNS": str(tmp / "runs"), "SMARTRECO_BUNDLE_LOADER": "graph_fake_bundle:load",
           "SMARTRECO_FEATURE_READER": "graph_fake_bundle:read_features",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "integration")])}
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit(f"graph ({mode}) exited: {proc.stderr.read()[-2000:]}")
        if time.perf_counter() - t0 > 400:
            proc.kill()
            raise SystemExit(f"graph ({mode}) not ready in 400 s")
        time.sleep(0.2)
    info = json.loads(ready.read_text())
    info["start_s"] = round(time.perf_counter() - t0, 1)
    return proc, info


def _latencies(url: str, n: int) -> list[float]:
    out = []
    users = [str(u) for u in range(1, 41)] + [f"new-{i}" for i in range(10)]
    for i in range(n):
        body = json.dumps({"jsonData": {"user_id": users[i % len(users)], "num_recommendations": 10}}).encode()
        req = urllib.request.Request(url + "/api/v1.0/predictions", data=body,
                                     headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def graph_latency(requests: int, rounds: int) -> dict:
    """p50/p99 of sequential REST requests through the whole graph, nodes as processes vs containers;
    ``rounds`` alternations (processes, containers, processes, ...) so drift on a shared machine shows."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    import graph_fake_bundle as fake

    tmp = Path(tempfile.mkdtemp(prefix="bench-graph-", dir="/tmp"))
    tmp.chmod(0o755)
    out: dict = {"bundle": "fake (tests/integration/graph_fake_bundle.py)", "requests_per_round": requests,
                 "concurrency": 1, "cache": "off", "rounds": {"processes": [], "containers": []}}
    try:
        bundle = fake.write(tmp / "bundle")
        for _ in range(rounds):
            for mode in ("processes", "containers"):
                print(f"[bench] graph latency, nodes as {mode} ...", file=sys.stderr)
                proc, info = _serve(mode, tmp, bundle)
                try:
                    _latencies(info["rest"], 30)  # warm-up: connections, first-call paths
                    load = os.getloadavg()[0]
                    lat = _latencies(info["rest"], requests)
                    out["rounds"][mode].append({
                        "start_s": info["start_s"], "p50_ms": _pct(lat, 0.50), "p90_ms": _pct(lat, 0.90),
                        "p99_ms": _pct(lat, 0.99), "mean_ms": round(statistics.fmean(lat), 2),
                        "load_average": round(load, 2)})
                finally:
                    proc.send_signal(2)
                    proc.wait(timeout=120)
        for mode, rows in out["rounds"].items():
            out[mode] = {k: round(statistics.median(r[k] for r in rows), 2)
                         for k in ("start_s", "p50_ms", "p90_ms", "p99_ms", "mean_ms")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-scratch", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    ap.add_argument("--sample-users", type=int, default=PARITY["sample_users"])
    ap.add_argument("--epochs", type=int, default=PARITY["epochs"])
    ap.add_argument("--requests", type=int, default=300, help="graph: timed requests per round")
    ap.add_argument("--rounds", type=int, default=2, help="graph: process/container alternations")
    args = ap.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: unknown {sorted(unknown)} (have {', '.join(SECTIONS)})")
    require_engine()
    report = json.loads(OUT.read_text()) if OUT.exists() else {}
    report.update({
        "what": "container images: build time and size, container start-up, per-step import time; training "
                "pipeline wall time by runner; graph latency with nodes as processes vs containers",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "engine": docker(["version", "--format", "{{.Server.Version}}"]).stdout.strip()},
    })
    pipeline, serving = IMAGES["pipeline"].tag, IMAGES["serving"].tag
    if "build" in sections:
        if args.from_scratch:
            from_scratch()
        t0 = time.perf_counter()
        results = build_images(ROOT, log=lambda m: print(m, file=sys.stderr))
        total = time.perf_counter() - t0
        report["from_scratch"] = args.from_scratch
        report["build"] = {"total_s": round(total, 1),
                           "images": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.as_dict().items()}
                                      for r in results]}
    if "steps" in sections:
        print("[bench] start-up and imports ...", file=sys.stderr)
        report["startup"] = {
            "pipeline_python_pass": _timed_run(pipeline, _import_code([]), args.repeats),
            "pipeline_import_stack": {"modules": STACK, **_timed_run(pipeline, _import_code(STACK), args.repeats)},
            "serving_python_pass": _timed_run(serving, _import_code([]), args.repeats),
            "serving_node_ready": serving_startup(serving, args.repeats),
        }
        report["pipeline_steps"] = {
            p.parent.name: {"modules": step_imports(p),
                            **_timed_run(pipeline, _import_code(step_imports(p)), args.repeats)}
            for p in sorted((ROOT / "components").glob("*/component.py"))}
    if "pipeline" in sections:
        # the parity configuration is the e2e test's reference; any other goes under its own key
        parity = {"sample_users": args.sample_users, "epochs": args.epochs} == PARITY
        key = "pipeline_by_runner" if parity else \
            f"pipeline_by_runner_{args.sample_users or 'all'}_users_{args.epochs}_epochs"
        report[key] = pipeline_by_runner(args.sample_users, args.epochs)
        report[key]["image_inputs_hash"] = image_label(pipeline, HASH_LABEL)
    if "graph" in sections:
        report["graph_latency"] = graph_latency(args.requests, args.rounds)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in report if k == "build" or k.startswith(("pipeline_by", "graph"))},
                     indent=2))


if __name__ == "__main__":
    main()
