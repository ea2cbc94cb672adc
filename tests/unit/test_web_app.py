"""`smartreco web` without a browser: bad input is a 400 naming the field, an unreachable graph a 502
saying so, feedback goes to the graph with the served answer's request id, /experiments analyses a real
event log with the project's A/B code, /model says what it has and what it lacks."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from smartreco.feedback.log import FeedbackLog
from smartreco.serving import client
from smartreco.web.app import WebConfig, create_app

pytestmark = [pytest.mark.unit]


def _answer(user: str, n: int = 3, variant: str = "champion") -> dict:
    recs = [
        {"item_id": str(i), "title": f"Movie {i}", "category": "Drama|Comedy", "rank": i, "score": 1 / i,
         "confidence": 0.5, "explanation": f"because you liked Movie {i + 10}"}
        for i in range(1, n + 1)
    ]
    return {"jsonData": {"user_id": user, "recommendations": recs, "variant": variant, "model_version": "v7",
                         "cold_start": False},
            "meta": {"puid": "p-1", "tags": {"request_id": "rid-1"}, "routing": {"ab-router": 0}}}


@pytest.fixture
def calls(monkeypatch):
    seen: dict[str, list] = {"recommend": [], "feedback": []}

    def recommend(user_id, n=10, channel="web", exclude=None, explain=True, url=None, timeout=10.0):
        seen["recommend"].append({"user": user_id, "n": n, "channel": channel, "exclude": exclude, "url": url})
        return _answer(user_id)

    def feedback(user_id, item_id, interaction_type, reward=None, response=None, url=None, timeout=10.0):
        seen["feedback"].append({"user": user_id, "item": item_id, "type": interaction_type, "response": response})
        return {"meta": {"tags": {"feedback_id": "fb-1", "duplicate": False}}}

    monkeypatch.setattr(client, "recommend", recommend)
    monkeypatch.setattr(client, "feedback", feedback)
    return seen


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = WebConfig(graph_url="http://graph.test", event_log=tmp_path / "events", drift_search=tmp_path / "runs")
    return TestClient(create_app(cfg))


def test_storefront_renders_the_answer_with_hooks(app, calls):
    r = app.get("/?user=7&channel=mobile&exclude=3,4")
    assert r.status_code == 200
    assert calls["recommend"] == [{"user": "7", "n": 10, "channel": "mobile", "exclude": ["3", "4"],
                                   "url": "http://graph.test"}]
    html = r.text
    assert html.count("data-item-id=") == 3 and 'data-item-id="1"' in html
    assert html.count('data-action="click"') == 3 and 'data-action="purchase"' in html
    assert 'class="variant">champion' in html and "(model v7)" in html
    assert 'name="request_id" value="rid-1"' in html  # the contract's meta.tags.request_id wins over puid
    assert '<span class="cat">Drama</span><span class="cat">Comedy</span>' in html


def test_storefront_without_a_user_asks_for_one(app, calls):
    r = app.get("/")
    assert r.status_code == 200 and "Start as a new user" in r.text and calls["recommend"] == []


def test_new_user_button_redirects_to_a_fresh_guest(app, calls):  # noqa: ARG001
    r = app.get("/?new=1&channel=web", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/?user=guest-")


@pytest.mark.parametrize(("query", "field"), [("user=a%20b", "user"), ("user=7&channel=tv", "channel"),
                                             ("user=7&n=0", "n"), ("user=7&n=ten", "n"),
                                             ("user=7&exclude=1,%3Cx%3E", "exclude")])
def test_bad_input_is_a_400_naming_the_field(app, calls, query, field):
    r = app.get(f"/?{query}")
    assert r.status_code == 400 and f"{field}: " in r.text and calls["recommend"] == []


def test_unreachable_graph_is_a_502_that_says_so(app, monkeypatch):
    def down(*args, **kwargs):
        raise client.GraphClientError("graph not reachable at http://graph.test (refused)")

    monkeypatch.setattr(client, "recommend", down)
    r = app.get("/?user=7")
    assert r.status_code == 502 and "graph not reachable at http://graph.test" in r.text


def _form(**extra) -> dict:
    return {"user": "7", "item": "2", "action": "click", "channel": "web", "n": "10", "request_id": "rid-1",
            "variant": "champion", "model_version": "v7", **extra}


def test_feedback_goes_through_the_graph_with_the_request_id_and_refreshes(app, calls):
    r = app.post("/feedback", data=_form(), headers={"X-Partial": "recs"})
    assert r.status_code == 200
    assert calls["feedback"] == [{"user": "7", "item": "2", "type": "click", "response": {
        "meta": {"puid": "rid-1", "tags": {"request_id": "rid-1"}},
        "jsonData": {"user_id": "7", "variant": "champion", "model_version": "v7"}}}]
    assert len(calls["recommend"]) == 1  # the list is asked for again after the feedback
    assert "click on item 2 recorded" in r.text and "<html" not in r.text  # a partial, swapped in place


def test_feedback_without_javascript_redirects_back(app, calls):  # noqa: ARG001
    r = app.post("/feedback", data=_form(action="purchase"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/?user=7&channel=web&n=10&notice=purchase")


@pytest.mark.parametrize(("form", "field"), [(_form(action="delete"), "action"), (_form(item=""), "item"),
                                            (_form(user=""), "user")])
def test_bad_feedback_is_a_400_and_sends_nothing(app, calls, form, field):
    r = app.post("/feedback", data=form)
    assert r.status_code == 400 and f"{field}: " in r.text and calls["feedback"] == []


def test_experiments_page_analyses_the_event_log(app, tmp_path):
    assert "Nothing to analyse yet" in app.get("/experiments").text
    with FeedbackLog(tmp_path / "events") as log:
        for k in range(60):
            arm = ("champion", "challenger")[k % 2]
            log.append_impression({"request_id": f"r{k}", "user_id": str(k), "variant": arm, "items": ["1", "2"]})
            if k % 4 == 1:
                log.append_feedback({"feedback_id": f"f{k}", "request_id": f"r{k}", "user_id": str(k),
                                     "item_id": "1", "interaction_type": "purchase", "variant": arm})
    html = app.get("/experiments").text
    assert 'data-arm="champion"' in html and 'data-arm="challenger"' in html
    assert html.count('<td class="ci">') == 4 and "chi-square p" in html
    assert 'class="share-plot"' in html and html.count("<polyline") == 2
    assert "challenger vs champion" in html


def test_model_page_without_anything_says_so_and_shows_a_drift_verdict(app, tmp_path):
    html = app.get("/model").text
    assert "No drift run yet." in html and "no MLflow database" in html and "No local deploy record" in html
    drift = tmp_path / "runs" / "drift-run" / "drift.json"
    drift.parent.mkdir(parents=True)
    drift.write_text(json.dumps({"drift_detected": True, "drifted_share": 0.4, "threshold": 0.3}))
    assert "DRIFT:\n  40% of columns drifted (threshold 30%)" in app.get("/model").text
