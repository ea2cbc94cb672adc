"""ABRouter node class: fixed split, bandit learning from feedback, persistence, Seldon's quirks."""

import uuid

import pytest

from inference_graph.ab_router import ABRouter
from smartreco.experiments.assignment import assign_ratio
from smartreco.serving.graph_state import Served

pytestmark = [pytest.mark.unit]


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "graph-state" / "state.sqlite"))


def _router(tmp_path, **kw):
    r = ABRouter(store=str(tmp_path / "arms.sqlite"), **kw)
    r.load()
    return r


def _feedback(r, arm: int | None, reward: float, user: str = "u1"):
    """A feedback about an answer the arm ``arm`` served (recorded as the arm node records it); None: an
    answer the graph never recorded. Each call is a new feedback id."""
    rid = uuid.uuid4().hex
    if arm is not None:
        r.state.record_served(Served(rid, user, r.arms[arm], "v1"))
    return r.send_feedback_raw({
        "request": {"jsonData": {"user_id": user}}, "reward": reward,
        "response": {"meta": {"tags": {"request_id": rid}}},
        "truth": {"jsonData": {"feedback_id": f"fb-{rid}"}},
    })  # fmt: skip


def _msg(user):
    return {"request": {"user_id": user, "num_recommendations": 10}}


def test_fixed_mode_is_consistent_per_user_and_returns_plain_int(tmp_path):
    r = _router(tmp_path, mode="fixed", ratio_a=0.5, experiment="e1")
    for u in ("1", "2", "42", "abc"):
        arm = r.route(_msg(u), [])
        assert type(arm) is int
        assert arm == assign_ratio(u, 0.5, "e1") == r.route(_msg(u), [])
    assert r.tags()["router_mode"] == "fixed"
    assert any(m["key"] == "smartreco_arm_served_total" for m in r.metrics())


def test_feedback_changes_arm_stats_and_survives_restart(tmp_path):
    r = _router(tmp_path, mode="epsilon_greedy")
    before = r.arm_stats()
    _feedback(r, 1, 1.0)
    _feedback(r, 1, 0.0)  # reward 0 is still a trial
    after = r.arm_stats()
    assert after["challenger"]["pulls"] == before["challenger"]["pulls"] + 2
    assert after["challenger"]["reward_sum"] == 1.0
    assert after["champion"]["pulls"] == 0
    gauges = {(m["key"], m["tags"]["arm"]): m["value"] for m in r.metrics() if m["type"] == "GAUGE"}
    assert gauges[("smartreco_arm_pulls", "challenger")] == 2
    restarted = _router(tmp_path, mode="epsilon_greedy")
    assert restarted.arm_stats()["challenger"]["pulls"] == 2


def test_feedback_on_an_unrecorded_answer_does_not_crash_or_count(tmp_path):
    r = _router(tmp_path, mode="thompson")
    assert _feedback(r, None, 1.0)["meta"]["tags"]["routing_known"] is False
    assert all(s["pulls"] == 0 for s in r.arm_stats().values())
    assert any(m["key"] == "smartreco_feedback_unattributed_total" for m in r.metrics())


def test_thompson_learns_to_route_to_rewarded_arm(tmp_path):
    r = _router(tmp_path, mode="thompson")
    for _ in range(60):
        _feedback(r, 0, 1.0)
        _feedback(r, 1, 0.0)
    picks = [r.route(_msg(str(u)), []) for u in range(200)]
    assert picks.count(0) > 180


def test_bad_parameters_and_missing_user(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        ABRouter(mode="roulette")
    with pytest.raises(ValueError, match="arms"):
        ABRouter(arms="only-one")
    r = _router(tmp_path)
    with pytest.raises(Exception, match="user_id"):
        r.route({"request": {}}, [])
