"""`smartreco serve | recommend | feedback`: run the local Seldon graph and talk to it.

``serve`` may be called from the pipeline venv: it resolves ``models:/name@alias`` URIs with MLflow
there and hands the node processes a ``{uri: path}`` map, then runs the executor with the serving
venv's Python (seldon-core lives only there).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from smartreco.errors import SmartRecoError
from smartreco.paths import project_root
from smartreco.serving.client import REWARDS, default_url, feedback, recommend


def _serving_python() -> str:
    try:
        import seldon_core  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    candidate = project_root() / ".venv-serving" / "bin" / "python"
    if not candidate.exists():
        raise SmartRecoError(f"serving venv not found at {candidate}; run `bash scripts/setup.sh all`")
    return str(candidate)


def _resolve_model_uris(manifest: str | None, dst_root: Path | None = None) -> dict[str, str]:
    """``models:/`` URIs of the graph resolved to local folders with MLflow (when MLflow is here).

    ``dst_root``: download into ``dst_root/<uri hash>`` instead of MLflow's private temp folders (node
    containers run as another user and must be able to read the bundles there)."""
    from inference_graph.executor.fusion import MODEL_URI_PARAMS
    from inference_graph.executor.graph import load_graph

    uris = {str(v) for n in load_graph(manifest).nodes() for k, v in n.kwargs().items() if k in MODEL_URI_PARAMS and v}
    remote = sorted(u for u in uris if u.startswith(("models:/", "runs:/")))
    if not remote:
        return {}
    try:
        import mlflow

        from smartreco.tracking.mlflow_tracking import tracking_uri
    except ImportError:
        return {}  # serving venv: nodes need SMARTRECO_MODEL_URIS or plain paths
    # the registry the pipeline wrote to (MLFLOW_TRACKING_URI or runs/mlflow), not MLflow's cwd default
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(tracking_uri())
    out = {}
    for uri in remote:
        dst = None
        if dst_root is not None:
            import hashlib

            dst = dst_root / hashlib.sha256(uri.encode()).hexdigest()[:16]
            dst.mkdir(parents=True, exist_ok=True)
        try:
            out[uri] = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst) if dst else None)
        except Exception as exc:
            raise SmartRecoError(f"model_uri: cannot resolve {uri} with MLflow ({exc})") from None
    return out


@click.command("serve")
@click.option("--port", default=8000, show_default=True, help="REST port (127.0.0.1)")
@click.option("--grpc-port", default=5000, show_default=True, help="gRPC port (127.0.0.1)")
@click.option(
    "--in-process", is_flag=True, help="run the node classes inside the executor (no node processes)"
)
@click.option("--manifest", default=None, help="SeldonDeployment YAML (default: manifests/base/seldon/...)")
@click.option("--model-path", default=None, help="use this bundle folder for every node's model_uri")
@click.option(
    "--fused", is_flag=True,
    help="low-latency graph: each arm's transformer, CF, CB and combiner as one node (2 hops instead of 5)",
)
@click.option(
    "--set", "overrides", default="{}", help='parameter overrides as JSON {"node"|"*": {"param": value}}'
)
@click.option("--cache", default="local", show_default=True, help="local | redis://HOST:PORT/DB | off")
@click.option(
    "--feedback-log",
    default=None,
    help="event log directory of the event service started next to the graph (impressions + durable feedback), "
    "or 'off' (default: runs/feedback)",
)
@click.option(
    "--state", default=None,
    help="redis://HOST:PORT/DB: bandit statistics, history, popularity, response cache and event log shared "
    "by every replica (default: $SMARTRECO_STATE; unset: local SQLite state and segment log)",
)
@click.option(
    "--containers", is_flag=True,
    help="run each graph node as a container of the serving image (needs a Docker engine and the image)",
)
@click.option("--image", default=None, help="with --containers: image for every node (default: the manifest's)")
@click.option(
    "--node-ports", default="manifest", show_default=True, type=click.Choice(["manifest", "free"]),
    help="with --containers: the manifest's node ports (free ones when busy) or free ports",
)
def serve(
    port: int,
    grpc_port: int,
    in_process: bool,
    manifest: str | None,
    model_path: str | None,
    fused: bool,
    overrides: str,
    cache: str,
    feedback_log: str | None,
    state: str | None,
    containers: bool,
    image: str | None,
    node_ports: str,
) -> None:
    """Run the inference graph from the SeldonDeployment locally (REST + gRPC on loopback).

    Nodes run as processes, in the executor (--in-process) or as containers (--containers): one container
    of the serving image per node, removed again when serve stops (Ctrl-C or SIGTERM)."""
    if containers and in_process:
        raise SmartRecoError("--containers and --in-process: choose one")
    try:
        sets = json.loads(overrides)
    except json.JSONDecodeError as exc:
        raise SmartRecoError(f"--set: not valid JSON ({exc.msg})") from None
    if model_path:
        from inference_graph.executor.fusion import MODEL_URI_PARAMS

        sets.setdefault("*", {}).update(dict.fromkeys(MODEL_URI_PARAMS, str(Path(model_path).resolve())))
    env = dict(os.environ)
    if not model_path:
        from smartreco.paths import runs_dir

        uris = _resolve_model_uris(manifest, runs_dir().resolve() / "serve-models" if containers else None)
        if uris:
            env["SMARTRECO_MODEL_URIS"] = json.dumps(uris)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(project_root()), env.get("PYTHONPATH", "")) if p)
    argv = [
        _serving_python(),
        "-m",
        "inference_graph.executor",
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--set",
        json.dumps(sets),
        "--cache",
        cache,
    ]
    if in_process:
        argv.append("--in-process")
    if fused:
        argv.append("--fused")
    if containers:
        from smartreco.containers.engine import require_engine

        require_engine()
        argv += ["--containers", "--node-ports", node_ports] + (["--image", image] if image else [])
    if feedback_log:
        argv += ["--feedback-log", feedback_log]
    if state:
        argv += ["--state", state]
    if manifest:
        argv += ["--manifest", manifest]
    click.echo(f"serving on http://127.0.0.1:{port} (REST) and 127.0.0.1:{grpc_port} (gRPC); Ctrl-C stops")
    sys.stdout.flush()
    os.execve(argv[0], argv, env)


@click.command("recommend")
@click.option("--user", "user_id", required=True)
@click.option("--n", default=10, show_default=True, type=int)
@click.option("--channel", default="web", show_default=True, type=click.Choice(["web", "mobile", "email"]))
@click.option("--exclude", default="", help="comma-separated item ids")
@click.option("--explain", is_flag=True, help="show the explanation of each item")
@click.option("--json", "as_json", is_flag=True, help="print the whole response")
@click.option("--url", default=default_url, show_default="$SMARTRECO_GRAPH_URL or http://127.0.0.1:8000")
def recommend_cmd(
    user_id: str, n: int, channel: str, exclude: str, explain: bool, as_json: bool, url: str
) -> None:
    """Ask the running graph for recommendations."""
    out = recommend(user_id, n, channel, [e for e in exclude.split(",") if e], True, url)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    data, meta = out["jsonData"], out.get("meta", {})
    click.echo(
        f"user {data['user_id']}  variant {data['variant']}  model {data['model_version']}  "
        f"routing {meta.get('routing')}  tags {meta.get('tags')}"
    )
    for r in data["recommendations"]:
        line = f"{r['rank']:>3}. {r['item_id']:>8}  {r['score']:.3f}  {r['title']}"
        if explain:
            line += f"  — {r['explanation']} (confidence {r['confidence']:.2f})"
        click.echo(line)


@click.command("feedback")
@click.option("--user", "user_id", required=True)
@click.option("--item", "item_id", required=True)
@click.option("--type", "interaction_type", required=True, type=click.Choice(sorted(REWARDS)))
@click.option("--reward", type=float, default=None, help="override the type's default reward")
@click.option("--url", default=default_url, show_default="$SMARTRECO_GRAPH_URL or http://127.0.0.1:8000")
def feedback_cmd(user_id: str, item_id: str, interaction_type: str, reward: float | None, url: str) -> None:
    """Send feedback for the user's last answer (routed back along its recorded path).

    Prints the feedback id the executor logged it under (durable before the answer), then the meta.
    """
    out = feedback(user_id, item_id, interaction_type, reward, url=url)
    meta = out.get("meta", {})
    tags = meta.get("tags") or {}
    if tags.get("feedback_id"):
        note = " (duplicate: already acknowledged)" if tags.get("duplicate") else ""
        click.echo(f"feedback_id {tags['feedback_id']}{note}")
    click.echo(json.dumps(meta))
