"""Crash benchmark of the shared state (issue #18): two replicas on one Redis (AOF, ``appendfsync always``),
SIGKILL of Redis or of one replica during a feedback load; count sent / acknowledged / stored feedback.

    .venv-serving/bin/python benchmarks/redis_state_crash.py                 # 4 trials x 600 feedback
    .venv-serving/bin/python benchmarks/redis_state_crash.py --trials 2 --feedback 200

Each trial starts a private ``redis-server`` (``--appendonly yes --appendfsync always``, its own port and
folder) and two executors ``python -m inference_graph.executor --in-process --state redis://...`` (fake
bundle from tests/integration, so the number measures the feedback path, not a model), each with its own
event service appending to the one Redis stream. ``--concurrency`` keep-alive clients per replica send
feedback with unique ids (a prediction every 5, so impressions reach the stream through the request
logger). After a random number of acknowledgements either Redis or replica A gets SIGKILL:

- ``redis``: the load goes on against a dead Redis (every feedback must fail: 503, never a 200), then
  Redis is restarted on the same AOF folder;
- ``executor``: replica B goes on serving.

Audit: every acknowledged feedback id is in the stream exactly once; then every sent id is retried through
replica B: the acknowledged ones must come back as duplicates, and after the retry every sent id is
stored, none twice. Results: benchmarks/results/redis_state_crash.{json,md}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

import graph_fake_bundle as fake  # noqa: E402

from smartreco.feedback import FEEDBACK, IMPRESSION  # noqa: E402
from smartreco.feedback.crashtrial import percentile  # noqa: E402
from smartreco.feedback.executor_crashcheck import _feedback_body, _Load, _post  # noqa: E402
from smartreco.feedback.stream_log import iter_stream_records  # noqa: E402
from smartreco.processes import ReadyFileProcess, rest_host_port  # noqa: E402
from smartreco.testing.redis_server import RedisServer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROBES = 20  # fresh feedback per replica while Redis is down
KEYS = ("kill", "concurrency", "kill_after", "sent", "acked", "stored", "missing",
        "stored_twice", "impressions", "acks_per_s", "ack_ms_p50", "ack_ms_p99", "resent",
        "resent_not_duplicate", "after_resend_missing", "after_resend_stored_twice", "redis_down_statuses")  # fmt: skip


class Replica(ReadyFileProcess):
    """One ``python -m inference_graph.executor --in-process --state URL`` on free loopback ports."""

    def __init__(self, workdir: Path, state: str, overrides: dict) -> None:
        args = ["--in-process", "--port", "0", "--grpc-port", "0", "--cache", "off", "--no-push", "--state", state,
                "--set", json.dumps(overrides), "--log-dir", str(workdir / "logs")]  # fmt: skip
        env = {**fake.node_env(), "SMARTRECO_RUNS": str(workdir)}
        super().__init__("inference_graph.executor", args, workdir, name="executor", env=env)

    def wait_rest(self, timeout_s: float = 120.0) -> tuple[str, int]:
        return rest_host_port(self.wait_ready(timeout_s))


def _run(loads: list[tuple[_Load, list[int]]], concurrency: int) -> list[threading.Thread]:
    threads = []
    for load, ids in loads:
        for k in range(concurrency):
            threads.append(threading.Thread(target=load.worker, args=(ids[k::concurrency],), daemon=True))
    for t in threads:
        t.start()
    return threads


def _probe(replicas: list[tuple[str, int]], first_id: int) -> dict[str, int]:
    """Status codes of fresh feedback (and predictions) sent to each replica while Redis is down: a feedback
    must never get a 200 (nothing can be stored), and nothing may be a 500."""
    codes: dict[str, int] = {}
    for r, (host, port) in enumerate(replicas):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            for k in range(PROBES):
                status, _ = _post(conn, "/api/v1.0/feedback", _feedback_body(first_id + r * PROBES + k))
                codes[f"feedback {status}"] = codes.get(f"feedback {status}", 0) + 1
            status, _ = _post(conn, "/api/v1.0/predictions", {"jsonData": {"user_id": "7", "num_recommendations": 5}})
            codes[f"predict {status}"] = codes.get(f"predict {status}", 0) + 1
        finally:
            conn.close()
    return codes


def trial(workdir: Path, kill: str, n: int, kill_after: int, concurrency: int, overrides: dict) -> dict:
    redis_server = RedisServer(workdir / "redis").start()
    a = Replica(workdir / "a", redis_server.url, overrides)
    b = Replica(workdir / "b", redis_server.url, overrides)
    try:
        (ha, pa), (hb, pb) = a.wait_rest(), b.wait_rest()
        load_a, load_b = _Load(ha, pa, 0, 5), _Load(hb, pb, 0, 5)
        threads = _run([(load_a, list(range(0, n, 2))), (load_b, list(range(1, n, 2)))], concurrency)
        started = time.perf_counter()
        acked_at_kill = None
        while any(t.is_alive() for t in threads):
            if acked_at_kill is None and len(load_a.acked) + len(load_b.acked) >= kill_after:
                acked_at_kill = len(load_a.acked) + len(load_b.acked)
                redis_server.kill(signal.SIGKILL) if kill == "redis" else os.kill(a.pid, signal.SIGKILL)
            time.sleep(0.001)
        down = _probe([(ha, pa), (hb, pb)], n) if kill == "redis" else {}
        load_s = time.perf_counter() - started
        acked = set(load_a.acked) | set(load_b.acked)
        sent = set(load_a.sent) | set(load_b.sent)
        if kill == "redis":
            redis_server = RedisServer(workdir / "redis", port=redis_server.port).start()  # same AOF folder
        raw = list(iter_stream_records(redis_server.url, dedupe=False))
        fb_ids = [r["id"] for r in raw if r["kind"] == FEEDBACK]
        latencies = load_a.latencies_ms + load_b.latencies_ms
        result = {
            "kill": kill, "concurrency": concurrency, "kill_after": kill_after, "sent": len(sent),
            "acked": len(acked), "acked_at_kill": acked_at_kill,
            "redis_down_statuses": down or None,
            "stored": len(set(fb_ids) & sent), "missing": len(acked - set(fb_ids)),
            "stored_twice": len(fb_ids) - len(set(fb_ids)),
            "impressions": sum(r["kind"] == IMPRESSION for r in raw),
            "acks_per_s": round(len(acked) / load_s, 1) if load_s else None,
            "ack_ms_p50": percentile(latencies, 0.5), "ack_ms_p99": percentile(latencies, 0.99),
        }  # fmt: skip
        # retry every sent id through replica B (the survivor): acknowledged ones must be duplicates
        retry = _Load(hb, pb, 0, 0)
        ids = sorted(int(f.split("-")[1]) for f in sent)
        for t in _run([(retry, ids)], concurrency):
            t.join(timeout=300)
        raw = list(iter_stream_records(redis_server.url, dedupe=False))
        fb_ids = [r["id"] for r in raw if r["kind"] == FEEDBACK]
        result.update(
            resent=len(retry.sent),
            resent_not_duplicate=len(acked - set(retry.duplicates)),
            after_resend_missing=len(sent - set(fb_ids)),
            after_resend_stored_twice=len(fb_ids) - len(set(fb_ids)),
        )
        return result
    finally:
        a.stop()
        b.stop()
        redis_server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--feedback", type=int, default=600, help="feedback requests per trial (both replicas)")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads per replica")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    trials = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = fake.write(Path(tmp) / "bundle")
        overrides = {"*": {"model_uri": str(bundle)}}
        for t in range(args.trials):
            kill = ("redis", "executor")[t % 2]
            kill_after = int(rng.integers(args.feedback // 10, args.feedback // 2))
            r = trial(Path(tmp) / f"trial-{t}", kill, args.feedback, kill_after, args.concurrency, overrides)
            trials.append(r)
            print(json.dumps({k: r[k] for k in KEYS}), flush=True)
    bad = ("missing", "stored_twice", "resent_not_duplicate", "after_resend_missing", "after_resend_stored_twice")
    ok = all(not any(t[k] for k in bad) and not any(
        c.endswith((" 500", "feedback 200")) for c in t["redis_down_statuses"] or {}) for t in trials)
    totals = {k: int(sum(t[k] for t in trials)) for k in ("sent", "acked", "stored", "missing")}
    out = {
        "benchmark": "redis_state_crash",
        "what": "two `python -m inference_graph.executor --in-process --state redis://...` replicas on one "
        "redis-server (appendonly yes, appendfsync always); SIGKILL of Redis or of replica A under feedback load",
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip(),
        "seconds": round(time.perf_counter() - started, 1), "all_acked_stored_once": ok, "totals": totals,
        "trials": trials,
    }  # fmt: skip
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "redis_state_crash.json").write_text(json.dumps(out, indent=2) + "\n")
    rows = ["| " + " | ".join(KEYS) + " |", "|" + "---|" * len(KEYS)]
    rows += ["| " + " | ".join(str(t[k]) for k in KEYS) + " |" for t in trials]
    md = f"""# Shared-state crash benchmark (two replicas, one Redis, SIGKILL under feedback load)

{out["what"]}; {len(trials)} trials, up to {args.feedback} feedback each, {args.concurrency} client threads per
replica, Python {out["python"]}, {out["cpus"]} CPUs, {out["redis"].split(" sha=")[0]}. Every acknowledged feedback
stored exactly once, no 200 for a feedback and no 500 while Redis was down, every acknowledged one a duplicate on
retry: **{ok}**.

{chr(10).join(rows)}

Totals: sent {totals["sent"]}, acked {totals["acked"]}, stored {totals["stored"]}, missing acked {totals["missing"]}.

`stored` = sent ids in the stream after the crash (>= acked: some were durable but the client never saw
the 200). `redis_down_statuses` = answers to {PROBES} fresh feedback per replica and one prediction each, sent while
Redis was down (a feedback must never get a 200 and nothing a 500: 503 for feedback, a degraded 200 for
predictions). `resent_not_duplicate` = acked ids that a retry through the surviving replica did not
recognise (must be 0). Ack latency: the graph's feedback walk, the event service's Redis append (Lua, AOF
fsync before Redis replies) and the effects in Redis; both replicas and Redis share the same 2 CPUs
(with other work on it). `acks_per_s` = acks over the whole load: in the `redis` trials that includes the
time after the kill, when every feedback is a 503.
"""
    (results / "redis_state_crash.md").write_text(md)
    print(f"all acked stored once: {ok}; {totals}")


if __name__ == "__main__":
    main()
