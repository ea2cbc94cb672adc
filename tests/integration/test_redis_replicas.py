"""Issue #18 done-when: two replicas (``smartreco serve --state redis://...`` twice, one Redis) learn as one.

Clicks, likes and purchases on a category absent from a new user's list, sent through the first replica,
make the second replica's next list gain items of that category; both replicas report the same bandit arm
counts; the Redis stream holds one impression per answer of both and every acknowledged feedback once.
Each replica is its own process (the fused graph's nodes in-process, its own event service), as two pods
would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("seldon_core")  # the executor runs the nodes: serving venv

from graph_fake_bundle import CATEGORIES, write  # noqa: E402

from smartreco.feedback import FEEDBACK, IMPRESSION  # noqa: E402
from smartreco.feedback.stream_log import iter_stream_records  # noqa: E402
from smartreco.ports import free_port  # noqa: E402
from smartreco.testing.redis_server import RedisServer  # noqa: E402

pytestmark = [pytest.mark.redis, pytest.mark.serving, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
N = 5


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class Replica:
    """``python -m smartreco serve --in-process --state URL`` in its own process."""

    def __init__(self, tmp: Path, name: str, bundle: Path, state: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SMARTRECO_BUNDLE_LOADER": "redis_fake_bundle:load",
               "SMARTRECO_FEATURE_READER": "graph_fake_bundle:read_features",
               "SMARTRECO_RUNS": str(tmp / name), "PYTHONPATH": os.pathsep.join((str(HERE), str(ROOT)))}  # fmt: skip
        env.pop("SMARTRECO_STATE", None)
        sets = {"ab-router": {"mode": "epsilon_greedy"}, "*": {"push_feedback": "false"}}
        cmd = [sys.executable, "-m", "smartreco", "serve", "--in-process", "--fused", "--port", str(self.port),
               "--grpc-port", str(free_port()), "--model-path", str(bundle), "--set", json.dumps(sets),
               "--state", state]  # fmt: skip
        self.log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, within_s: float = 120.0) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url + "/health/status", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"replica {self.url} not ready: {Path(self.log.name).read_text()[-3000:]}")

    def predict(self, body: dict) -> dict:
        code, out = _post(self.url + "/api/v1.0/predictions", body)
        assert code == 200, out
        return out

    def feedback(self, body: dict) -> dict:
        code, out = _post(self.url + "/api/v1.0/feedback", body)
        assert code == 200, out
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def _arm_counts(reply: dict) -> dict[str, int]:
    """The bandit's arm pulls the router reports in its feedback reply (``meta.tags.arm_pulls``; in the fused
    graph the router is the root, whose reply is the feedback's answer, as under Seldon's executor)."""
    return reply["meta"]["tags"]["arm_pulls"]


def _feedback_msg(user: str, answer: dict, item: str, kind: str, reward: float, fid: str) -> dict:
    return {"request": {"jsonData": {"user_id": user}}, "response": answer, "reward": reward,
            "truth": {"jsonData": {"item_id": item, "interaction_type": kind, "feedback_id": fid}}}  # fmt: skip


def test_two_replicas_learn_as_one(tmp_path):
    bundle = write(tmp_path / "bundle")
    with RedisServer(tmp_path / "redis") as redis_server:
        a = Replica(tmp_path, "a", bundle, redis_server.url)
        b = Replica(tmp_path, "b", bundle, redis_server.url)
        try:
            a.wait_ready()
            b.wait_ready()
            user = f"newcomer-{uuid.uuid4().hex[:6]}"
            ask = {"jsonData": {"user_id": user, "num_recommendations": N}}
            first = a.predict(ask)
            held = {r["item_id"]: r["category"] for r in first["jsonData"]["recommendations"]}
            absent = [c for c in CATEGORIES if c not in held.values()]
            assert absent, held
            target = absent[0]
            picks = [str(k + 1) for k in range(240) if CATEGORIES[k % 6] == target and str(k + 1) not in held][:3]
            before_b = b.predict(ask)  # replica b's answer before the feedback (may be cached there)
            acked = []
            for item, kind, reward in zip(picks, ("click", "like", "purchase"), (1.0, 3.0, 5.0), strict=True):
                fid = f"fb-{uuid.uuid4().hex[:10]}"
                reply = a.feedback(_feedback_msg(user, first, item, kind, reward, fid))
                assert reply["meta"]["tags"]["feedback_id"] == fid, reply
                acked.append(fid)
            # a retry of an acknowledged feedback through the OTHER replica changes nothing
            again = b.feedback(_feedback_msg(user, first, picks[2], "purchase", 5.0, acked[2]))
            assert again["meta"]["tags"]["duplicate"] is True, again

            second = b.predict(ask)  # the other replica: its cache was invalidated, it learned from a's clicks
            recs = second["jsonData"]["recommendations"]
            gained = [r["item_id"] for r in recs if r["category"] == target]
            assert gained and not set(gained) & set(held), (held, recs)
            assert second["meta"]["tags"].get("cache") != "hit"
            assert not set(picks) & {r["item_id"] for r in recs}

            # the same arm statistics from both replicas (shared bandit store)
            third = a.predict(ask)
            retry = _feedback_msg(user, first, picks[0], "click", 1.0, acked[0])  # changes nothing: a report
            counts_a, counts_b = _arm_counts(a.feedback(retry)), _arm_counts(b.feedback(retry))
            assert counts_a == counts_b, (counts_a, counts_b)
            assert sum(counts_a.values()) == len(acked)  # one reward per acknowledged feedback, whichever replica

            # the stream: one impression per answer of both replicas, every acknowledged feedback once
            answers = [first, before_b, second, third]
            rids = {x["jsonData"]["request_id"] for x in answers}
            deadline = time.monotonic() + 20
            while True:  # the request logger is asynchronous (as Seldon's): bounded poll
                records = list(iter_stream_records(redis_server.url, dedupe=False))
                imps = [r["id"] for r in records if r["kind"] == IMPRESSION]
                if rids <= set(imps) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert sorted(set(imps) & rids) == sorted(rids) and len(imps) == len(set(imps)), imps
            fbs = sorted(r["id"] for r in records if r["kind"] == FEEDBACK)
            assert fbs == sorted(acked)
        finally:
            a.stop()
            b.stop()
