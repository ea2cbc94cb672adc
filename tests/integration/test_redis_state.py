"""The graph nodes' shared state in Redis (issue #18): the same effects as the SQLite state, exactly once
across replicas, and a Redis that is down degrades the answer path instead of failing it while a feedback
effect that cannot be stored raises (nothing applied, the retry completes it)."""

from __future__ import annotations

import signal

import pytest

from smartreco.serving.graph_state import Served, open_state
from smartreco.serving.redis_state import RedisGraphState, StateUnavailable
from smartreco.testing.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.integration]


@pytest.fixture()
def redis_server(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


def test_effects_apply_once_across_replicas_and_read_back(redis_server):
    a, b = RedisGraphState(redis_server.url), RedisGraphState(redis_server.url)  # two replicas
    assert isinstance(open_state(redis_server.url), RedisGraphState)
    assert a.apply_once("f1:history", lambda p: a.add_history(p, "u", "i1")) is True
    assert b.apply_once("f1:history", lambda p: b.add_history(p, "u", "i1")) is False  # already done elsewhere
    for n in range(2, 25):
        b.apply_once(f"f{n}:history", lambda p, n=n: b.add_history(p, "u", f"i{n}"))
    assert a.history("u") == [f"i{n}" for n in range(24, 4, -1)]  # newest first, 20 kept
    a.apply_once("f1:popularity", lambda p: a.add_popularity(p, "i1", 3.0))
    b.apply_once("f2:popularity", lambda p: b.add_popularity(p, "i2", 5.0))
    assert list(b.top_popular(2)) == ["i2", "i1"]
    a.apply_once("f1:cache", lambda p: a.bump_generation(p, "u"))
    assert b.generation("u") == 1 and b.generation("nobody") == 0
    a.record_served(Served("r1", "u", "champion", "v1"))
    assert b.served("r1") == Served("r1", "u", "champion", "v1") == b.last_served("u")
    calls = []
    assert b.run_once("f1:reward", lambda: calls.append(1)) and not a.run_once("f1:reward", lambda: calls.append(1))
    assert calls == [1]


def test_redis_down_degrades_reads_and_refuses_effects(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    state = RedisGraphState(server.url)
    state.apply_once("f1:history", lambda p: state.add_history(p, "u", "i1"))
    server.kill(signal.SIGKILL)
    try:
        assert state.history("u") == [] and state.top_popular() == {} and state.generation("u") == -1
        state.record_served(Served("r2", "u", "champion", "v1"))  # logged, not raised: the answer still goes out
        with pytest.raises(StateUnavailable):
            state.apply_once("f2:history", lambda p: state.add_history(p, "u", "i2"))
        with pytest.raises(StateUnavailable):
            state.served("r1")  # a feedback cannot be attributed: it fails (503), the client retries
    finally:
        server = RedisServer(tmp_path / "redis", port=server.port).start()
    try:
        assert state.history("u") == ["i1"]  # back, with what was acknowledged before the crash
        assert state.apply_once("f2:history", lambda p: state.add_history(p, "u", "i2")) is True
    finally:
        server.stop()


def test_the_router_answers_with_the_hash_split_while_the_shared_arm_store_is_down(tmp_path, monkeypatch):
    from inference_graph.ab_router import ABRouter

    server = RedisServer(tmp_path / "redis").start()
    monkeypatch.setenv("SMARTRECO_STATE", server.url)
    router = ABRouter(mode="thompson", stats_refresh_s=0)
    router.load()
    assert router.route({"request": {"user_id": "u1"}}, []) in (0, 1)
    assert "router_degraded" not in router.tags()
    server.kill(signal.SIGKILL)
    arms = {router.route({"request": {"user_id": f"u{k}"}}, []) for k in range(20)}
    assert arms <= {0, 1} and "arm store unavailable" in router.tags()["router_degraded"]
