"""``python -m inference_graph.executor``: run the local graph (what ``smartreco serve`` starts)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from inference_graph.executor.server import ServeConfig, default_feedback_log, serve_forever
from smartreco import settings
from smartreco.errors import SmartRecoError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m inference_graph.executor", description=__doc__)
    ap.add_argument("--manifest", help="SeldonDeployment YAML (default: manifests/base/seldon/...)")
    ap.add_argument("--predictor")
    ap.add_argument("--fused", action="store_true",
                    help="each arm's transformer, CF, CB and combiner as one node (the low-latency graph)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--grpc-port", type=int, default=5000)
    ap.add_argument("--in-process", action="store_true", help="run the node classes in this process")
    ap.add_argument("--attach", action="store_true",
                    help="the nodes already run on 127.0.0.1 at their manifest ports (a pod's containers): start none")
    ap.add_argument("--host", default="127.0.0.1", help="address the REST and gRPC fronts listen on")
    ap.add_argument("--containers", action="store_true", help="run each node as a container of the serving image")
    ap.add_argument("--image", help="with --containers: this image for every node (default: the manifest's)")
    ap.add_argument("--node-ports", choices=("manifest", "free"), default="manifest",
                    help="with --containers: the manifest's node ports (free ones when busy) or free ports")
    ap.add_argument("--set", default="{}", help='parameter overrides, JSON {"node"|"*": {"param": value}}')
    ap.add_argument("--cache", default="local", help="local | redis://HOST:PORT/DB | off")
    ap.add_argument("--cache-ttl", type=float, default=30.0)
    ap.add_argument("--timeout-ms", type=float, default=None,
                    help="per-node-call timeout (default: the manifest's seldon.io/rest-timeout)")
    ap.add_argument("--node-threads", type=int, default=4, help="GUNICORN_THREADS of each node process")
    ap.add_argument("--node-workers", type=int, default=1, help="GUNICORN_WORKERS of each node process")
    ap.add_argument("--grpc-workers", type=int, default=1, help="GRPC_WORKERS of each node (0: none)")
    ap.add_argument("--log-dir")
    ap.add_argument("--ready-file", help="write the endpoints as JSON here once serving")
    ap.add_argument(
        "--feedback-log",
        default=None,
        help="event log directory of the event service started next to the graph, or 'off' "
        "(default: <runs>/feedback)",
    )
    ap.add_argument("--events-url", help="use this running event service instead of starting one")
    ap.add_argument("--graph-state", help="the nodes' shared state file (default: $SMARTRECO_GRAPH_STATE)")
    ap.add_argument("--state", default=None,
                    help="redis://HOST:PORT/DB: state and event log every replica shares (default: $SMARTRECO_STATE)")
    ap.add_argument("--feature-server", help="online store feature server URL for feedback pushes")
    ap.add_argument("--no-push", action="store_true", help="do not push feedback to the online store")
    ap.add_argument(
        "--token-file",
        help="file holding the API bearer token (default: $SMARTRECO_API_TOKEN_FILE, then $SMARTRECO_API_TOKEN; "
        "none: auth off)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        overrides = json.loads(args.set)
        state = args.state or settings.STATE.get()
        if state and not state.startswith(("redis://", "rediss://", "unix://")):
            raise SmartRecoError(f"--state {state}: expected redis://HOST:PORT/DB")
        cfg = ServeConfig(
            manifest=args.manifest,
            predictor=args.predictor,
            fused=args.fused,
            port=args.port,
            grpc_port=args.grpc_port,
            in_process=args.in_process,
            attach=args.attach,
            host=args.host,
            containers=args.containers,
            container_image=args.image,
            container_ports=args.node_ports,
            overrides=overrides,
            cache=args.cache,
            cache_ttl_s=args.cache_ttl,
            timeout_ms=args.timeout_ms,
            node_threads=args.node_threads,
            node_workers=args.node_workers,
            grpc_workers=args.grpc_workers,
            log_dir=args.log_dir,
            ready_file=args.ready_file,
            feedback_log=args.feedback_log or default_feedback_log(),
            feature_server=args.feature_server,
            push_feedback=not args.no_push,
            token_file=args.token_file,
            events_url=args.events_url,
            graph_state=args.graph_state,
            state=state or None,
        )
        asyncio.run(serve_forever(cfg))
    except (SmartRecoError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
