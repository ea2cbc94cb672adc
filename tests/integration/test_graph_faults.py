"""Faults during load (issue #20): a node killed, a node frozen past the deployment's timeout, the response
cache's Redis stopped. Each run mixes predictions and feedback (each feedback with its own id, about the
answer just served) from 4 client threads and injects the fault part-way. Every run ends with:

- no 500 and nothing but 200 / 503, every 503 carrying ``Retry-After`` (under Seldon semantics a failed
  child fails the request; the local executor answers 503 + Retry-After, never a 500);
- every acknowledged (200) feedback in the event log, once (0 acknowledged records lost);
- where the fault heals (the frozen node resumes), the client's retry of each refused feedback, same id,
  is acknowledged and stored once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

from graph_fake_bundle import GraphThread  # noqa: E402

from smartreco.feedback import FEEDBACK, iter_records  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

N_REQUESTS = 32
FAULT_AFTER = 8


def _call(url: str, path: str, body: dict, timeout: float = 30) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def _feedback_body(user: str, answer: dict, fid: str) -> dict:
    item = answer["jsonData"]["recommendations"][0]["item_id"]
    return {"request": {"jsonData": {"user_id": user}}, "response": answer, "reward": 1.0,
            "truth": {"jsonData": {"item_id": item, "interaction_type": "click", "feedback_id": fid}}}


def _session(url: str, i: int, tag: str) -> list[dict]:
    """One client turn: a prediction, then feedback about it (if it was answered)."""
    user = str(i % 30 + 1)
    code, headers, answer = _call(url, "/api/v1.0/predictions", {"jsonData": {"user_id": user,
                                                                             "num_recommendations": 5}})
    out = [{"kind": "predict", "code": code, "retry_after": headers.get("Retry-After"), "at": time.monotonic()}]
    if code != 200:
        return out
    fid = f"{tag}-{i}"
    body = _feedback_body(user, answer, fid)
    code, headers, _ = _call(url, "/api/v1.0/feedback", body)
    out.append({"kind": "feedback", "code": code, "retry_after": headers.get("Retry-After"), "id": fid,
                "body": body, "at": time.monotonic()})
    return out


def _load(graph: GraphThread, tag: str, fault) -> tuple[list[dict], float]:
    """N_REQUESTS sessions from 4 threads; ``fault()`` once FAULT_AFTER sessions have finished."""
    done = threading.Semaphore(0)
    with ThreadPoolExecutor(4) as pool:
        futures = []
        for i in range(N_REQUESTS):
            fut = pool.submit(_session, graph.url, i, tag)
            fut.add_done_callback(lambda _: done.release())
            futures.append(fut)
        for _ in range(FAULT_AFTER):
            assert done.acquire(timeout=120), "the load stalled before the fault"
        fault_at = time.monotonic()
        fault()
        results = [r for f in futures for r in f.result(timeout=300)]
    return results, fault_at


def _stored_feedback(log_dir) -> Counter:
    return Counter(r["id"] for r in iter_records(log_dir, dedupe=False) if r["kind"] == FEEDBACK)


def _check(results: list[dict], log_dir) -> set[str]:
    """No 500, only 200/503, every 503 with Retry-After, every acked feedback stored once; the acked ids."""
    codes = Counter(r["code"] for r in results)
    assert set(codes) <= {200, 503}, codes
    for r in results:
        if r["code"] == 503:
            assert r["retry_after"] is not None and int(r["retry_after"]) >= 1, r
    acked = {r["id"] for r in results if r["kind"] == "feedback" and r["code"] == 200}
    stored = _stored_feedback(log_dir)
    assert acked - set(stored) == set(), "acknowledged feedback lost"
    assert max(stored.values(), default=1) == 1, "a feedback stored twice"
    return acked


def _graph(tmp_path, **cfg) -> GraphThread:
    g = GraphThread(tmp_path, in_process=cfg.pop("in_process", False), mode="fixed", fused=True,
                    feedback_log=str(tmp_path / "feedback"), **cfg)
    g.log_dir = tmp_path / "feedback"
    return g


def test_a_node_killed_during_load_gives_503s_with_retry_after_and_loses_no_acked_feedback(tmp_path):
    g = _graph(tmp_path, timeout_ms=5000)
    try:
        victim = g.graph.processes.procs["hybrid-a"]
        results, _ = _load(g, "kill", lambda: os.killpg(victim.proc.pid, signal.SIGKILL))
        # once the node is dead (killpg has returned), a turn for each of the 30 users: those routed to the
        # killed arm are refused (503), the other arm keeps answering (200). A time window after the kill
        # would depend on machine speed: on a quiet machine the load's last sessions end within milliseconds.
        after = [r for i in range(30) for r in _session(g.url, i, "after")]
        acked = _check(results + after, g.log_dir)
        assert any(r["code"] == 503 for r in after) and any(r["code"] == 200 for r in after)
        assert len(acked) >= FAULT_AFTER // 2
        status = urllib.request.Request(g.url + "/health/status")
        with pytest.raises(urllib.error.HTTPError) as down:
            urllib.request.urlopen(status, timeout=30)
        assert down.value.code == 503  # readiness shows the dead node
    finally:
        g.stop()


def test_a_node_frozen_past_its_timeout_gives_503s_and_the_retries_complete(tmp_path):
    g = _graph(tmp_path, timeout_ms=1500)
    victim = g.graph.processes.procs["hybrid-a"]
    try:
        results, _ = _load(g, "slow", lambda: os.killpg(victim.proc.pid, signal.SIGSTOP))
        acked = _check(results, g.log_dir)
        refused = [r for r in results if r["kind"] == "feedback" and r["code"] == 503]
        assert any(r["code"] == 503 for r in results), "the frozen node never timed out"
        os.killpg(victim.proc.pid, signal.SIGCONT)
        # the client's retry, same id, once the node answers again (bounded: it may still be catching up)
        for r in refused:
            deadline = time.monotonic() + 60
            while (code := _call(g.url, "/api/v1.0/feedback", r["body"])[0]) != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert code == 200, r["id"]
        stored = _stored_feedback(g.log_dir)
        assert acked | {r["id"] for r in refused} <= set(stored)
        assert max(stored.values()) == 1
    finally:
        if victim.alive():
            os.killpg(victim.proc.pid, signal.SIGCONT)
        g.stop()


def _redis_server(port: int, tmp_path) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import redis

    deadline = time.monotonic() + 30
    while True:
        try:
            redis.Redis(port=port, socket_timeout=1).ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)


def _redis_caches(g: GraphThread) -> list:
    """The in-process arms' Redis response caches (HybridRecommender -> combiner -> AnswerCache -> backend)."""
    from smartreco.serving.cache import RedisResponseCache

    found = []
    for obj in g.graph.engine.transport.objects.values():
        answers = getattr(getattr(obj, "combiner", obj), "cache", None)
        backend = getattr(answers, "cache", None)
        if isinstance(backend, RedisResponseCache):
            found.append(backend)
    return found


def test_redis_stopped_during_load_degrades_the_cache_and_fails_nothing(tmp_path):
    """A private redis-server (the shared one serves others) backs the ranking nodes' response cache;
    SIGKILL of it mid-load turns cache reads into misses: every request still answers 200."""
    import shutil

    from smartreco.ports import free_port

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not installed (scripts/services.sh installs it)")
    port = free_port()
    server = _redis_server(port, tmp_path)
    try:
        g = _graph(tmp_path, in_process=True, cache=f"redis://127.0.0.1:{port}/0")
        try:
            # warm the cache first so that the kill hits reads as well as writes
            for i in range(FAULT_AFTER):
                assert _session(g.url, i, "warm")[0]["code"] == 200
            results, _ = _load(g, "redis", server.kill)
            _check(results, g.log_dir)
            assert {r["code"] for r in results} == {200}  # a dependency of the cache only: degraded, never failed
            caches = _redis_caches(g)
            assert caches and sum(c.errors for c in caches) >= 1  # the nodes did hit the dead Redis
        finally:
            g.stop()
    finally:
        server.kill()
        server.wait(10)
