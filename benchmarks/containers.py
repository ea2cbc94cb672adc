"""Container benchmark: image build time and size, container start-up, and per-step import time.

    .venv/bin/python benchmarks/containers.py                 # images as they are (builds if missing)
    .venv/bin/python benchmarks/containers.py --from-scratch  # remove images, bases and wheelhouses first

Per pipeline step (components/<step>/component.py) it times `docker run` of the pipeline image that imports
the component module and every module its function body imports (what the step pays before doing work).
Writes benchmarks/results/containers.json."""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import shutil
import socket
import statistics
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
from smartreco.containers.engine import docker, require_engine  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "containers.json"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-scratch", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    require_engine()
    if args.from_scratch:
        from_scratch()
    t0 = time.perf_counter()
    results = build_images(ROOT, log=lambda m: print(m, file=sys.stderr))
    total = time.perf_counter() - t0
    pipeline, serving = IMAGES["pipeline"].tag, IMAGES["serving"].tag
    print("[bench] start-up and imports ...", file=sys.stderr)
    steps = {p.parent.name: {"modules": step_imports(p), **_timed_run(pipeline, _import_code(step_imports(p)),
                                                                         args.repeats)}
             for p in sorted((ROOT / "components").glob("*/component.py"))}
    report = {
        "what": "container images: build time and size, container start-up, per-step import time",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "engine": docker(["version", "--format", "{{.Server.Version}}"]).stdout.strip()},
        "from_scratch": args.from_scratch,
        "build": {"total_s": round(total, 1),
                  "images": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.as_dict().items()}
                             for r in results]},
        "startup": {
            "pipeline_python_pass": _timed_run(pipeline, _import_code([]), args.repeats),
            "pipeline_import_stack": {"modules": STACK, **_timed_run(pipeline, _import_code(STACK), args.repeats)},
            "serving_python_pass": _timed_run(serving, _import_code([]), args.repeats),
            "serving_node_ready": serving_startup(serving, args.repeats),
        },
        "pipeline_steps": steps,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
