"""Two in-process graphs with different node environments in one process, at the same time: each graph's nodes
read their own settings (at construction, at load, and at request time on the graph's event-loop thread and in
its feedback worker threads) and the process environment is the same before, during and after.

Before, an in-process graph exported its ``node_env`` into ``os.environ``: the last graph's values reached
every other graph of the process and outlived it (a test's ``state=redis://`` sent a later module's events to
a stopped Redis)."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

from graph_fake_bundle import GraphThread  # noqa: E402

from smartreco.feedback import FEEDBACK, iter_records  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

#: the real online-store reader: it reads SMARTRECO_FEATURE_SERVER when a request comes, not at load
REAL_READER = "smartreco.features.online_client:get_user_features"


class FeatureServerStub:
    """Counts the requests it gets and answers 503 (the transformer then serves without user features)."""

    def __init__(self) -> None:
        self.hits = 0
        lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    stub.hits += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _predict(graph, user: str) -> dict:
    code, body = graph.post("/api/v1.0/predictions", {"jsonData": {"user_id": user, "num_recommendations": 5}})
    assert code == 200, body
    return body


def _feedback(graph, user: str) -> str:
    resp = _predict(graph, user)
    item = resp["jsonData"]["recommendations"][0]["item_id"]
    code, out = graph.post(
        "/api/v1.0/feedback",
        {"request": {"jsonData": {"user_id": user}}, "response": resp, "reward": 1.0,
         "truth": {"item_id": item, "interaction_type": "click"}},
    )  # fmt: skip
    assert code == 200, out
    assert out["meta"]["tags"]["duplicate"] is False
    return out["meta"]["tags"]["feedback_id"]


def test_concurrent_in_process_graphs_each_see_their_own_node_env_and_leave_the_process_env(tmp_path, monkeypatch):
    # this process's own values, which neither graph's nodes may see nor change
    monkeypatch.setenv("SMARTRECO_FEATURE_SERVER", "http://127.0.0.1:9")
    monkeypatch.setenv("SMARTRECO_METRICS_FLUSH_S", "1")
    monkeypatch.delenv("SMARTRECO_EVENTS_URL", raising=False)
    monkeypatch.delenv("SMARTRECO_STATE", raising=False)
    before = dict(os.environ)
    stubs = {name: FeatureServerStub() for name in ("a", "b")}
    flush = {"a": "0", "b": "7"}

    def start(name: str) -> GraphThread:
        return GraphThread(
            tmp_path / name,
            in_process=True,
            feedback_log=str(tmp_path / name / "events"),
            feature_server=stubs[name].url,
            node_env={"SMARTRECO_FEATURE_READER": REAL_READER, "SMARTRECO_METRICS_FLUSH_S": flush[name]},
        )

    graphs: dict[str, GraphThread] = {}
    try:
        with ThreadPoolExecutor(2) as pool:  # built and loaded at the same time, each on its own loop thread
            started = {name: pool.submit(start, name) for name in ("a", "b")}
            for name, future in started.items():
                graphs[name] = future.result(timeout=300)
        assert dict(os.environ) == before

        for name, g in graphs.items():  # read at construction and at load
            objects = g.graph.engine.transport.objects
            assert {o._metrics.flush_s for o in objects.values()} == {float(flush[name])}, name
            assert str(objects["feature-transformer"].effects.state.path) == g.cfg.graph_state
            assert str(objects["ab-router"].state.path) == g.cfg.graph_state

        users = {"a": [f"a-user-{i}" for i in range(6)], "b": [f"b-user-{i}" for i in range(4)]}
        with ThreadPoolExecutor(4) as pool:  # both graphs answer at once, from several client threads each
            answers = [pool.submit(_predict, graphs[name], u) for name in graphs for u in users[name]]
            bodies = [a.result(timeout=120) for a in answers]
            # the event service URL is read at a graph's first feedback, in its feedback worker thread
            fids = {name: pool.submit(_feedback, graphs[name], users[name][0]) for name in graphs}
            fids = {name: f.result(timeout=120) for name, f in fids.items()}
        assert all(b["meta"]["tags"]["feature_source"] == "unavailable" for b in bodies)  # the stubs' 503
        # SMARTRECO_FEATURE_SERVER read per request on each graph's loop thread: each its own stub, never
        # this process's (a closed port); one POST per request (a 503 caches no feature references), plus the
        # one request each feedback's own prediction made
        assert (stubs["a"].hits, stubs["b"].hits) == (len(users["a"]) + 1, len(users["b"]) + 1)
        for name in graphs:
            logged = {r["id"] for r in iter_records(tmp_path / name / "events") if r["kind"] == FEEDBACK}
            assert logged == {fids[name]}, name  # its own event service, not the other graph's
        assert dict(os.environ) == before
    finally:
        for g in graphs.values():
            g.stop()
        for stub in stubs.values():
            stub.close()
    assert dict(os.environ) == before
