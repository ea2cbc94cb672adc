"""The feast-free client parses the feature server's wire format; runs in the serving venv (no feast)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from smartreco.features.online_client import FeatureServerError, OnlineFeatureClient

pytestmark = [pytest.mark.serving]


class _Stub(BaseHTTPRequestHandler):
    pushed: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/push":
            _Stub.pushed.append(body)
            out = {}
        else:
            known = body["entities"]["user_id"][0] == "7"
            out = {
                "metadata": {"feature_names": ["user_id", "interaction_count", "recent_items"]},
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
