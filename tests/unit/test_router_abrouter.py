"""ABRouter node class: fixed split, bandit learning from feedback, persistence, Seldon's quirks."""

import pytest

from inference_graph.ab_router import ABRouter
from smartreco.experiments.assignment import assign_ratio

pytestmark = [pytest.mark.unit]


def _router(tmp_path, **kw):
    r = ABRouter(store=str(tmp_path / "arms.sqlite"), **kw)
    r.load()
    return r


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
    r.send_feedback([], [], 1.0, None, routing=1)
    r.send_feedback([], [], 0.0, None, routing=1)  # reward 0 is still a trial
    after = r.arm_stats()
    assert after["challenger"]["pulls"] == before["challenger"]["pulls"] + 2
    assert after["challenger"]["reward_sum"] == 1.0
    assert after["champion"]["pulls"] == 0
    gauges = {(m["key"], m["tags"]["arm"]): m["value"] for m in r.metrics() if m["type"] == "GAUGE"}
    assert gauges[("smartreco_arm_pulls", "challenger")] == 2
    restarted = _router(tmp_path, mode="epsilon_greedy")
    assert restarted.arm_stats()["challenger"]["pulls"] == 2


def test_feedback_without_routing_does_not_crash_or_count(tmp_path):
    r = _router(tmp_path, mode="thompson")
    assert r.send_feedback([], [], 1.0, None, routing=None) == []
    assert all(s["pulls"] == 0 for s in r.arm_stats().values())
    assert any(m["key"] == "smartreco_feedback_unattributed_total" for m in r.metrics())


def test_thompson_learns_to_route_to_rewarded_arm(tmp_path):
    r = _router(tmp_path, mode="thompson")
    for _ in range(60):
        r.send_feedback([], [], 1.0, None, routing=0)
        r.send_feedback([], [], 0.0, None, routing=1)
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
