"""Cluster rehearsal with MLflow (issue #19): the local overlay's platform (PostgreSQL, Redis, MLflow on PostgreSQL
with the object-store volume, Feast, the event service, the web app) comes up; a MovieLens bundle is registered in
the rehearsal's MLflow from the host (through ``--forward mlflow:5000``, as ``kubectl port-forward`` would); the
training pipeline's deploy step (``components/deploy``, ``target="rehearsal"``) rolls the SeldonDeployment out, its
model-fetch init container downloading every model from that MLflow; REST and gRPC predictions through the
Service; then version 2 is registered and deployed while a client in the web pod sends a steady stream through the
Service name (no retries), and every failure is counted; ``rehearse down`` leaves nothing.

Usage (engine needed, heavy: run it only in a slot you were given, as root on the engine's host)::

    echo 19 > /proc/self/autogroup
    .venv/bin/python benchmarks/rehearsal_mlflow.py --bundle runs/pipelines/<run>/train-hybrid/bundle \\
        --rate 20 --out benchmarks/results/rehearsal_mlflow.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "smartreco-rehearsal"  # the deploy component's default rehearsal
FORWARD_PORT = 5000  # MLflow's --allowed-hosts admits localhost:5000 (what kubectl port-forward gives)

STREAM = r"""
import json, os, random, sys, threading, time, urllib.request, urllib.error
from concurrent.futures import ThreadPoolExecutor
rate, max_s, users = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
url = "http://smartreco-default:8000/api/v1.0/predictions"
out, stop = "/tmp/stream.json", "/tmp/stream.stop"
lock = threading.Lock()
res = {"sent": 0, "ok": 0, "failed": 0, "errors": {}, "lat_ms": [], "first_fail_s": None, "last_fail_s": None}
t0 = time.monotonic()
def one(i):
    body = json.dumps({"jsonData": {"user_id": random.choice(users), "num_recommendations": 5}}).encode()
    start = time.monotonic()
    try:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            ok = r.status == 200 and len(json.loads(r.read())["jsonData"]["recommendations"]) == 5
            err = None if ok else "bad answer"
    except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
        ok, err = False, type(exc).__name__ + ": " + str(exc)[:80]
    with lock:
        res["lat_ms"].append(round((time.monotonic() - start) * 1000, 1))
        if ok:
            res["ok"] += 1
        else:
            res["failed"] += 1
            res["errors"][err] = res["errors"].get(err, 0) + 1
            at = round(start - t0, 1)
            res["first_fail_s"] = res["first_fail_s"] if res["first_fail_s"] is not None else at
            res["last_fail_s"] = at
with ThreadPoolExecutor(32) as pool:
    i = 0
    while time.monotonic() - t0 < max_s and not os.path.exists(stop):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        pool.submit(one, i)
        i += 1
    res["sent"] = i
res["seconds"] = round(time.monotonic() - t0, 1)
lat = sorted(res.pop("lat_ms"))
res["p50_ms"] = lat[len(lat) // 2] if lat else None
res["p99_ms"] = lat[int(len(lat) * 0.99)] if lat else None
res["achieved_rps"] = round(res["sent"] / res["seconds"], 2)
json.dump(res, open(out, "w"))
"""


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] (load {load()}) {msg}", file=sys.stderr, flush=True)


def docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def post(url: str, body: dict, timeout: float = 60) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", "Host": "smartreco-default"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def register(bundle: Path, versions: int) -> dict[str, list[str]]:
    """Log the bundle's three pyfuncs once, register each ``versions`` times; champion + challenger = the last."""
    import mlflow

    from smartreco.tracking import mlflow_tracking as T

    client = T.configure()
    with mlflow.start_run(run_name="rehearsal"):
        uris = T.log_bundle_models(bundle)
    out: dict[str, list[str]] = {}
    for kind, uri in uris.items():
        name = T.MODEL_NAMES[kind]
        out[kind] = [str(mlflow.register_model(uri, name).version) for _ in range(versions)]
        T.promote(client, name, out[kind][0])
        client.set_registered_model_alias(name, T.CHALLENGER, out[kind][0])
    return out


def promote(version: str) -> None:
    from smartreco.tracking import mlflow_tracking as T

    client = T.configure()
    for name in T.MODEL_NAMES.values():
        T.promote(client, name, version)
        client.set_registered_model_alias(name, T.CHALLENGER, version)


def pipeline_deploy(version: str, work: Path) -> dict:
    """The training pipeline's deploy step as KFP runs it (its python_func), target rehearsal."""
    from kfp.dsl import Artifact, Markdown, Model

    from components.deploy.component import deploy
    from smartreco.tracking import mlflow_tracking as T

    gate = work / f"gate-{version}.json"
    gate.write_text(json.dumps({"model_uris": {k: f"models:/{n}/{version}" for k, n in T.MODEL_NAMES.items()}}))
    out = work / f"deployment-{version}"
    target = deploy.python_func(
        bundle=Model(uri=str(work / "unused-bundle")),
        gate=Artifact(uri=str(gate)),
        deployment=Artifact(uri=str(out)),
        summary=Markdown(uri=str(work / f"deploy-{version}.md")),
        model_version=version,
        target="rehearsal",
    )
    return {"target": target, **json.loads((out / "deploy.json").read_text())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--rate", type=float, default=20.0, help="requests/s of the steady stream during the rollout")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/rehearsal_mlflow.json")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smartreco-rehearsal-mlflow-"))
    os.environ["SMARTRECO_REHEARSAL_DIR"] = str(work / "state")
    os.environ["SMARTRECO_RUNS"] = str(work / "runs")
    os.environ["MLFLOW_TRACKING_URI"] = f"http://localhost:{FORWARD_PORT}"
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", FORWARD_PORT)) == 0:
            raise SystemExit(f"127.0.0.1:{FORWARD_PORT} is taken: the forward needs it")

    import pandas as pd

    from smartreco.rehearse import runner, session

    users = [str(u) for u in pd.read_parquet(args.bundle / "users.parquet").iloc[:, 0].tolist()[:50]]
    bundle_manifest = json.loads((args.bundle / "manifest.json").read_text())
    result: dict = {
        "what": "smartreco rehearse up --overlay local --skip smartreco --forward mlflow:5000, MovieLens bundle "
        "registered in the rehearsal's MLflow (PostgreSQL backend, object-store volume), the pipeline's deploy step "
        "with target=rehearsal (rehearse apply, model-fetch from that MLflow), predictions through the Service, a "
        "second deploy under a steady stream (benchmarks/rehearsal_mlflow.py)",
        "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "bundle": {
            "path": str(args.bundle.relative_to(ROOT) if args.bundle.is_relative_to(ROOT) else args.bundle),
            "kind": bundle_manifest.get("kind"),
            "n_users": bundle_manifest.get("n_users"),
            "n_items": bundle_manifest.get("n_items"),
            "created": bundle_manifest.get("created"),
            "data": "MovieLens ml-latest-small (the make demo training run)",
        },
        "machine": "2 cores shared with the other engineers' jobs; load average (1/5/15 min) at each step below",
        "steps": {},
    }

    def step(key: str, **values) -> None:
        result["steps"][key] = {"load": load(), **values}
        log(f"{key}: {values}")

    t = time.monotonic()
    try:
        up = session.up(
            "local",
            name=NAME,
            skip=frozenset({"smartreco"}),
            forwards=(f"mlflow:{FORWARD_PORT}",),
            timeout_s=args.timeout,
            log=log,
        )
        step("up_platform", ready_seconds=up["ready_seconds"], workloads=sorted(up["workloads"]))
        result["images"] = up["images"]

        t = time.monotonic()
        versions = register(args.bundle, versions=2)
        step("register", seconds=round(time.monotonic() - t, 1), versions=versions)
        secrets = json.loads(Path(up["secrets_file"]).read_text())
        pg_user = secrets["smartreco-postgres"]["username"]
        rows = docker(
            "exec",
            f"{NAME}-postgres-0-postgres",
            "psql",
            "-h",
            "/var/run/postgresql",
            "-U",
            pg_user,
            "-d",
            "mlflow",
            "-Atc",
            "select name, count(*) from model_versions group by name order by name",
        )
        step("postgres_holds_the_registry", rc=rows.returncode, rows=rows.stdout.split())

        first = versions["hybrid"][0]
        t = time.monotonic()
        dep = pipeline_deploy(first, work)
        step("pipeline_deploy_1", seconds=round(time.monotonic() - t, 1), result=dep)
        pods = runner.workload_pods(NAME, "SeldonDeployment/smartreco")
        (pod,) = pods
        fetched = docker("logs", f"{NAME}-{pod}-model-fetch").stdout.split("\n")
        step("model_fetch", pod=pod, fetched=[line for line in fetched if line.startswith("fetched")])

        ip = docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", f"{NAME}-{pod}"
        ).stdout.strip()
        ask = {"jsonData": {"user_id": users[0], "num_recommendations": 5}}
        answer = post(f"http://{ip}:8000/api/v1.0/predictions", ask)
        recs = answer["jsonData"]["recommendations"]
        grpc = docker(
            "exec",
            f"{NAME}-{pod}-seldon-container-engine",
            "python",
            "-c",
            "import json, sys, grpc\nfrom google.protobuf import json_format\n"
            "from seldon_core.proto import prediction_pb2, prediction_pb2_grpc\n"
            "with grpc.insecure_channel('smartreco-default.smartreco.svc.cluster.local:5001') as ch:\n"
            "    msg = json_format.ParseDict(json.loads(sys.argv[1]), prediction_pb2.SeldonMessage())\n"
            "    r = prediction_pb2_grpc.SeldonStub(ch).Predict(msg, timeout=30)\n"
            "    print(json.dumps(json_format.MessageToDict(r)))\n",
            json.dumps(ask),
        )
        grpc_recs = json.loads(grpc.stdout)["jsonData"]["recommendations"] if grpc.returncode == 0 else None
        step(
            "predictions",
            rest_items=[r["item_id"] for r in recs],
            rest_explained=all(r.get("explanation") for r in recs),
            routing=answer["meta"].get("routing"),
            tags=answer["meta"].get("tags"),
            grpc_items=[r["item_id"] for r in grpc_recs] if grpc_recs else grpc.stderr[-400:],
        )

        second = versions["hybrid"][1]
        promote(second)
        web = f"{NAME}-smartreco-web-0-web"
        docker("exec", web, "rm", "-f", "/tmp/stream.json", "/tmp/stream.stop")
        stream = subprocess.Popen(
            ["docker", "exec", web, "python", "-c", STREAM, str(args.rate), "600", json.dumps(users)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(15)  # the stream's steady state before the rollout starts
        t = time.monotonic()
        dep2 = pipeline_deploy(second, work)
        rollout_s = round(time.monotonic() - t, 1)
        time.sleep(15)  # and after the old pod is gone
        docker("exec", web, "touch", "/tmp/stream.stop")
        _, err = stream.communicate(timeout=120)
        got = docker("exec", web, "cat", "/tmp/stream.json")
        stats = json.loads(got.stdout) if got.returncode == 0 else {"error": err[-800:]}
        step(
            "rollout_under_stream",
            rate_asked=args.rate,
            rollout_seconds=rollout_s,
            deploy=dep2,
            stream=stats,
            client="one urllib POST per request to smartreco-default:8000 from the web pod (Docker DNS), no retry, "
            "10 s timeout, 32 threads, open loop",
        )
    finally:
        t = time.monotonic()
        gone = session.down(NAME)
        left = runner.leftovers(NAME)
        step("down", seconds=round(time.monotonic() - t, 1), removed=gone, leftovers=left)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
