"""Are the fused arm's answers unchanged? Record them on the real bundle, or compare with a recording.

A CPU cut in the serving path must not change what is recommended or explained. This runs the fused arm
in process (the classes of ``benchmarks/latency.py``'s in-process floor) over ``--n`` distinct requests (every
bundle user, then again with another hour and channel; plus two users unknown to the bundle). The users'
features are read once from the feature server and replayed from a file, and the node state starts empty
(no online history, no live popularity), so two runs see the same inputs whatever the stores do in between.
It writes every answer's items, scores, confidences, component scores and explanations; ``--compare`` exits 1
on any difference (and prints the first ones).

    # before the change (e.g. a `git worktree` or `git archive` of the old commit), then after it:
    .venv-serving/bin/python benchmarks/serving_answers.py --record before.json --histories hist.json
    .venv-serving/bin/python benchmarks/serving_answers.py --record after.json --histories hist.json \\
        --compare before.json

``--histories`` is written from the feature server (``SMARTRECO_FEATURE_SERVER``) when the file does not
exist yet. The default bundle is the local deploy record's, as in ``benchmarks/latency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests" / "integration")]
os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the node processes run (see benchmarks/latency.py)

#: the replayed features, by user id (set by main before the graph loads the reader)
CAPTURED: dict[str, dict] = {}


def read_captured(user_id: str) -> dict:
    """The feature reader the transformer part uses here (``SMARTRECO_FEATURE_READER``)."""
    return dict(CAPTURED.get(str(user_id)) or {})


def capture(users: list[str], path: Path) -> None:
    """Every user's features from the feature server, once, into ``path``."""
    from smartreco.features.online_client import client_for

    client, out = client_for(None), {}
    for start in range(0, len(users), 50):
        out.update(zip(users[start : start + 50], client.get_users_features(users[start : start + 50]), strict=True))
    path.write_text(json.dumps(out))


def record(bundle: Path, n: int) -> list[dict]:
    import latency as L

    from inference_graph.executor.engine import GraphEngine
    from inference_graph.executor.graph import load_graph, override_parameters
    from inference_graph.executor.transport import InProcessTransport

    g = load_graph(fused=True)
    override_parameters(g, {"*": dict.fromkeys(L.MODEL_URI_PARAMS, str(bundle)), "ab-router": {"store": "memory"}})
    engine = GraphEngine(g, InProcessTransport(g.nodes()))

    async def run() -> list[dict]:
        out = []
        for i in range(n):
            req = L.body(i)
            d = (await engine.predict(req))["jsonData"]
            keep = ("variant", "cold_start", "degraded", "recommendations")
            out.append({"request": req["jsonData"], **{k: d.get(k) for k in keep}})
        return out

    return asyncio.run(run())


def differences(a: list[dict], b: list[dict], limit: int = 10) -> list[str]:
    """Where two recordings differ (exact comparison: same floats, same strings)."""
    found: list[str] = []
    if len(a) != len(b):
        return [f"{len(a)} answers vs {len(b)}"]
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            found.append(f"answer {i} ({x['request']['user_id']}): {json.dumps(x)[:300]} != {json.dumps(y)[:300]}")
            if len(found) >= limit:
                break
    return found


def main() -> int:
    import latency as L

    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path", help="bundle folder (default: the local deploy record's bundle)")
    ap.add_argument("--histories", required=True, help="captured features (JSON); written when missing")
    ap.add_argument("--record", required=True, help="where to write this run's answers (JSON)")
    ap.add_argument("--compare", help="a recording to compare with: exit 1 on any difference")
    ap.add_argument("--n", type=int, default=0, help="requests (default: two per bundle user, + 2 unknown users)")
    args = ap.parse_args()
    bundle = Path(args.model_path).resolve() if args.model_path else L.deployed_bundle()
    L.USERS[:] = L.bundle_users(bundle) + ["unknown-user-1", "unknown-user-2"]
    hist = Path(args.histories)
    if not hist.exists():
        capture(L.USERS, hist)
    CAPTURED.update(json.loads(hist.read_text()))
    sys.modules.setdefault("serving_answers", sys.modules[__name__])  # the reader's import finds this module
    os.environ["SMARTRECO_FEATURE_READER"] = "serving_answers:read_captured"
    # a fresh node state: the shared one carries other runs' online history and live popularity
    os.environ.pop("SMARTRECO_STATE", None)
    os.environ["SMARTRECO_GRAPH_STATE"] = str(Path(tempfile.mkdtemp(prefix="smartreco-answers-")) / "state.sqlite")
    answers = record(bundle, args.n or 2 * len(L.USERS))
    Path(args.record).write_text(json.dumps(answers, sort_keys=True))
    n_recs = sum(len(a["recommendations"] or []) for a in answers)
    print(f"{len(answers)} answers, {n_recs} recommendations -> {args.record}")
    if args.compare:
        diff = differences(json.loads(Path(args.compare).read_text()), json.loads(Path(args.record).read_text()))
        print("\n".join(diff) if diff else f"identical to {args.compare}")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
