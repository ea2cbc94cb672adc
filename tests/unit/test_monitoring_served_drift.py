"""The drift job on the served traffic: `smartreco drift report --current <event log>` reads what users did
(and the served items as the prediction log) from the graph's event log, and pushes smartreco_drift_share /
smartreco_drift_detected{dataset} to a Pushgateway (here a real HTTP server that records the PUT), the
numbers the SmartRecoDriftDetected alert reads."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from smartreco.cli import main
from smartreco.data.sources import load_source
from smartreco.feedback import FeedbackLog
from smartreco.monitoring.served import is_event_log, served_data, served_predictions

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def event_log(tmp_path_factory):
    """Traffic over MovieLens items: every served answer, and a click on its first item."""
    ref = load_source("movielens")
    items = ref.items["item_id"].astype(str).tolist()
    users = ref.interactions["user_id"].astype(str).unique().tolist()
    log_dir = tmp_path_factory.mktemp("events")
    with FeedbackLog(log_dir) as log:
        for i in range(300):
            shown = [items[(i * 7 + k) % len(items)] for k in range(5)]
            log.append_impression({"request_id": f"r{i}", "user_id": users[i % len(users)], "variant": "a",
                                   "items": shown, "scores": [1.0 - k / 10 for k in range(5)]})  # fmt: skip
            log.append_feedback({"feedback_id": f"f{i}", "request_id": f"r{i}", "user_id": users[i % len(users)],
                                 "item_id": shown[0], "interaction_type": "click", "reward": 1.0})  # fmt: skip
    return log_dir


class _Gateway(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(("PUT", self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_event_log_is_the_current_side(event_log, tmp_path):
    assert is_event_log(str(event_log)) and not is_event_log(str(tmp_path))
    ref = load_source("movielens")
    cur = served_data(str(event_log), ref)
    assert len(cur.interactions) == 300 and set(cur.interactions.columns) <= set(ref.interactions.columns)
    preds = served_predictions(str(event_log))
    assert len(preds) == 1500 and preds["rank"].min() == 1


def test_drift_report_on_the_traffic_pushes_the_alert_metrics(event_log, tmp_path, capsys):
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        gateway = f"http://127.0.0.1:{server.server_port}"
        code = main(["drift", "report", "--reference", "movielens", "--current", str(event_log),
                     "--out", str(tmp_path / "drift"), "--pushgateway", gateway])  # fmt: skip
    finally:
        server.shutdown()
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "pushed smartreco_drift_share" in out.out
    ((method, path, body),) = _Gateway.received
    assert method == "PUT" and path == "/metrics/job/smartreco-drift"
    text = body.decode()
    assert 'smartreco_drift_share{dataset="interactions"}' in text
    assert 'smartreco_drift_detected{dataset="interactions"}' in text
