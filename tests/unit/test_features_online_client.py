"""The feast-free client parses the feature server's wire format; runs in the serving venv (no feast)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from smartreco.features.online_client import FeatureServerError, OnlineFeatureClient

pytestmark = [pytest.mark.serving]


class _Stub(BaseHTTPRequestHandler):
    """Answers like Feast's server; with ``full_names`` it names features ``view__feature`` when asked."""

    pushed: list = []
    reads: list = []
    full_names = False

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/push":
            _Stub.pushed.append(body)
            out = {}
        else:
            _Stub.reads.append(body)
            known = body["entities"]["user_id"][0] == "7"
            names = ["interaction_count", "recent_items"]
            if _Stub.full_names and body.get("full_feature_names"):
                names = ["user_stats__interaction_count", "user_recent_history__recent_items"]
            out = {
                "metadata": {"feature_names": ["user_id", *names]},
                "results": [
                    {"values": body["entities"]["user_id"], "statuses": ["PRESENT"]},
                    {"values": [3 if known else None], "statuses": ["PRESENT" if known else "NOT_FOUND"]},
                    {"values": [["a", "b"] if known else None], "statuses": ["PRESENT" if known else "NOT_FOUND"]},
                ],
            }
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def client():
    server = HTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield OnlineFeatureClient(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()


def test_service_is_expanded_to_feature_refs_once(client, monkeypatch):
    """Asking by reference skips the server's per-request FeatureService rebuild (the ~2.5 ms it costs)."""
    monkeypatch.setattr(_Stub, "full_names", True)
    _Stub.reads.clear()
    assert client.get_user_features("7")["interaction_count"] == 3
    assert client.get_users_features(["8"])[0]["known"] is False
    probe, first, second = _Stub.reads
    assert probe["feature_service"] == "serving_user_v1" and probe["full_feature_names"] is True
    refs = ["user_stats:interaction_count", "user_recent_history:recent_items"]
    assert first["features"] == second["features"] == refs
    assert "feature_service" not in first and second["entities"] == {"user_id": ["8"]}


def test_module_reader_reuses_one_client_per_url(client, monkeypatch):
    from smartreco.features import online_client

    monkeypatch.setattr(_Stub, "full_names", True)
    _Stub.reads.clear()
    for _ in range(3):
        assert online_client.get_user_features("7", url=client.url)["known"]
    assert online_client.client_for(client.url) is online_client.client_for(client.url)
    assert len(_Stub.reads) == 4  # one expansion of the service, then one request per read


def test_server_without_full_names_gets_the_service_name(client):
    _Stub.reads.clear()
    client.get_user_features("7")
    client.get_user_features("7")
    assert [r.get("feature_service") for r in _Stub.reads] == ["serving_user_v1"] * 3
    assert "features" not in _Stub.reads[-1]


def test_reads_known_and_unknown_users(client):
    known = client.get_user_features("7")
    assert known["known"] and known["interaction_count"] == 3 and known["recent_items"] == ["a", "b"]
    unknown = client.get_user_features("8")
    assert not unknown["known"] and unknown["recent_items"] == []


def test_push_prepends_item_to_history(client):
    assert client.push_interaction("7", "z") == ["z", "a", "b"]
    body = _Stub.pushed[-1]
    assert body["push_source_name"] == "interactions_push" and body["df"]["recent_items"] == [["z", "a", "b"]]


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(FeatureServerError, match="feature server"):
        OnlineFeatureClient("http://127.0.0.1:9", timeout=0.5).get_user_features("1")
