"""Response cache: bounded by bytes (not only entries), and a Redis-backed cache that degrades to a
miss when Redis is down or goes away mid-load (no exception reaches the request path)."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from smartreco.serving.cache import LocalResponseCache, RedisResponseCache, _encode

pytestmark = [pytest.mark.unit]


def answer(n: int) -> dict:
    return {"jsonData": {"recommendations": [{"item_id": str(i), "explanation": "x" * 40} for i in range(n)]}}


def test_local_cache_is_bounded_by_bytes_and_skips_huge_answers():
    one = len(_encode(answer(10))) + len("u0|k0")
    c = LocalResponseCache(ttl_s=60, max_entries=10_000, max_bytes=one * 5 + 10, max_entry_bytes=one * 2)
    for i in range(50):
        c.put(f"u{i}", f"u{i}|k{i}", answer(10))
        assert c.bytes <= c.max_bytes
    assert len(c) == 5 and c.get("u49", "u49|k49") is not None and c.get("u0", "u0|k0") is None
    c.put("big", "big|k", answer(100))  # over max_entry_bytes: not cached, nothing evicted for it
    assert c.get("big", "big|k") is None and len(c) == 5
    c.put("u49", "u49|k49", answer(1))  # replacing an entry accounts its new size
    assert c.invalidate_user("u49") == 1
    assert c.bytes == sum(e[3] for e in c._data.values())


def test_expired_answers_leave_the_cache_without_being_asked_for_and_hits_are_copies():
    now = [0.0]
    c = LocalResponseCache(ttl_s=30, clock=lambda: now[0])
    for i in range(20):
        c.put(f"u{i}", f"u{i}|k", answer(3))
    held = c.bytes
    now[0] = 31.0  # all twenty expired; nobody asks for them again
    c.put("new", "new|k", answer(3))
    assert len(c) == 1 and c.bytes < held / 10
    hit = c.get("new", "new|k")
    hit["jsonData"]["recommendations"].clear()  # a caller changing its copy changes nothing cached
    assert len(c.get("new", "new|k")["jsonData"]["recommendations"]) == 3


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_redis_cache_with_redis_down_is_a_miss_not_an_error():
    c = RedisResponseCache(f"redis://127.0.0.1:{_dead_port()}/0", ttl_s=30, retry_after_s=60)
    assert c.get("1", "1|k") is None
    c.put("1", "1|k", answer(3))
    assert c.invalidate_user("1") == 0
    assert c.errors == 2  # get failed, put was skipped (Redis known down), invalidation still tried
    assert not c.healthy


class _Proxy:
    """A TCP proxy in front of the test Redis that can be cut: Redis 'stopped' for this client only."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.alive = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass

    def stop(self) -> None:
        for s in (self.server, *self.conns):  # shutdown first: close alone leaves accept() listening
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.mark.redis
def test_redis_stopped_during_load_degrades_to_misses():
    from smartreco.features.store import default_redis_url

    host, _, port = default_redis_url().split(",")[0].partition(":")
    proxy = _Proxy((host, int(port or 6379)))
    prefix = f"test-cache-{proxy.port}"
    c = RedisResponseCache(f"redis://127.0.0.1:{proxy.port}/0", ttl_s=30, prefix=prefix, retry_after_s=0.05)
    served = 0
    for i in range(40):
        if i == 20:
            proxy.stop()  # Redis goes away mid-load
        key = f"u{i % 4}|k"
        if c.get(f"u{i % 4}", key) is None:
            c.put(f"u{i % 4}", key, answer(3))
        else:
            served += 1
        if i == 19:
            assert c.errors == 0 and served == 16  # the cache worked before the cut
            assert c.invalidate_user("u0") == 1
    assert c.errors >= 1 and c.invalidate_user("u1") == 0
