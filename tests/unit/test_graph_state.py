"""The graph nodes' shared state and feedback parsing: every effect exactly once per feedback id (or at
least once for an outside effect that failed), state visible across processes (one SQLite file), and the
same feedback id derived by every node from the same message."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from smartreco.schema import RequestValidationError
from smartreco.serving.graph_feedback import FeedbackEffects, attribute, feedback_record, parse_feedback
from smartreco.serving.graph_state import GraphState, Served

pytestmark = [pytest.mark.unit]


def _fb(**kw):
    msg = {"request": {"jsonData": {"user_id": "u1"}}, "reward": 1.0,
           "truth": {"jsonData": {"item_id": "42", "interaction_type": "click"}}}  # fmt: skip
    msg.update(kw)
    return msg


def test_effects_apply_once_and_a_failed_outside_effect_runs_again(tmp_path):
    state = GraphState(tmp_path / "s.sqlite")
    assert state.apply_once("f1:history", lambda con: state.add_history(con, "u", "a"))
    assert not state.apply_once("f1:history", lambda con: state.add_history(con, "u", "b"))
    assert state.history("u") == ["a"]
    with pytest.raises(RuntimeError):
        state.apply_once("f2:history", lambda con: (state.add_history(con, "u", "c"), _boom()))
    assert state.history("u") == ["a"] and not state.done("f2:history")  # rolled back with its key
    calls = []
    with pytest.raises(RuntimeError):
        state.run_once("f1:push", _boom)
    assert state.run_once("f1:push", lambda: calls.append(1)) and not state.run_once("f1:push", calls.append)
    assert calls == [1]


def _boom(*_a):
    raise RuntimeError("store down")


def test_history_popularity_generation_and_served_answers(tmp_path):
    state = GraphState(tmp_path / "s.sqlite", history_per_user=3)
    for item in ("1", "2", "3", "4", "2"):
        state.apply_once(f"h{item}{len(state.history('u'))}", lambda con, i=item: state.add_history(con, "u", i))
    assert state.history("u") == ["2", "4", "3"]  # newest first, repeat moved to the front, capped
    state.apply_once("p1", lambda con: state.add_popularity(con, "x", 2.0))
    state.apply_once("p2", lambda con: state.add_popularity(con, "y", 0.5))
    assert list(state.top_popular(5)) == ["x", "y"] and state.top_popular(5)["x"] == pytest.approx(2.0, rel=1e-3)
    assert state.generation("u") == 0
    state.apply_once("g", lambda con: state.bump_generation(con, "u"))
    assert state.generation("u") == 1
    state.record_served(Served("r1", "u", "champion", "v1"))
    state.record_served(Served("r2", "u", "challenger", "v2"))
    assert state.served("r1").variant == "champion" and state.last_served("u").request_id == "r2"


def _writer(path: str, n: int) -> None:
    state = GraphState(path)
    for i in range(n):
        state.apply_once(f"w{i}:popularity", lambda con: state.add_popularity(con, "hot", 1.0))


def test_state_is_shared_by_processes_and_each_key_applies_once(tmp_path):
    path = str(tmp_path / "s.sqlite")
    GraphState(path)
    procs = [mp.get_context("fork").Process(target=_writer, args=(path, 50)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert GraphState(path).top_popular(1)["hot"] == pytest.approx(50.0, rel=1e-3)  # 3 x 50 keys, 50 distinct


def test_every_node_derives_the_same_feedback_id():
    answer = {"meta": {"tags": {"request_id": "req-1"}, "routing": {"ab-router": 1}},
              "jsonData": {"variant": "challenger", "recommendations": [{"item_id": "42", "rank": 3, "score": 0.5}]}}
    a, b = parse_feedback(_fb(response=answer)), parse_feedback(_fb(response=answer))
    assert a.feedback_id == b.feedback_id and a.request_id == "req-1" and a.client_routing == {"ab-router": 1}
    assert (a.rank, a.score, a.variant) == (3, 0.5, "challenger")
    blind = parse_feedback(_fb(reward=4.0, truth=None))  # no id, no answer named: an id from the content
    assert blind.feedback_id == parse_feedback(_fb(reward=4.0, truth=None)).feedback_id
    assert blind.feedback_id != parse_feedback(_fb(reward=3.0, truth=None)).feedback_id
    given = parse_feedback(_fb(truth={"jsonData": {"item_id": "1", "interaction_type": "like", "feedback_id": "x"}}))
    assert given.feedback_id == "x"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (_fb(reward=-1), "reward"),
        (_fb(request={}), "request.jsonData.user_id"),
        (_fb(truth={"jsonData": {"item_id": "1", "interaction_type": "poke"}}), "truth.interaction_type"),
        (_fb(response={"meta": {"routing": {"ab-router": "x"}}}), "response.meta.routing"),
        (_fb(response={"meta": {"tags": {"request_id": 5}}}), "response.meta.tags.request_id"),
    ],
)
def test_bad_feedback_names_the_field(message, field):
    with pytest.raises(RequestValidationError) as err:
        parse_feedback(message)
    assert str(err.value).startswith(field)


def test_attribution_and_record(tmp_path):
    state = GraphState(tmp_path / "s.sqlite")
    state.record_served(Served("r9", "u1", "champion", "v3"))
    cli = parse_feedback(_fb())  # sent without the answer: the user's last one
    assert attribute(cli, state).request_id == "r9"
    rec = feedback_record(cli, attribute(cli, state))
    assert (rec["id"], rec["request_id"], rec["variant"], rec["item_id"]) == (cli.feedback_id, "r9", "champion", "42")
    foreign = parse_feedback(_fb(request={"jsonData": {"user_id": "u2"}}, response={"meta": {"puid": "r9"}}))
    assert attribute(foreign, state) is None  # someone else's answer counts for nothing


def test_learn_is_idempotent_per_effect(tmp_path):
    state = GraphState(tmp_path / "s.sqlite")
    pushed = []
    effects = FeedbackEffects(state, push=lambda u, i: pushed.append((u, i)))
    event = parse_feedback(_fb(truth={"jsonData": {"item_id": "7", "interaction_type": "purchase"}}))
    assert effects.learn(event) == {"online_store_push": "ok", "duplicate": False}
    assert effects.learn(event)["duplicate"] is True
    assert pushed == [("u1", "7")] and state.history("u1") == ["7"] and state.generation("u1") == 1
    assert effects.online_block("u1")["popularity_boost"]["7"] == pytest.approx(4.0, rel=1e-3)


def test_prune_forgets_old_answers_and_effect_keys(tmp_path, monkeypatch):
    import time as _time

    state = GraphState(tmp_path / "s.sqlite", retention_s=100.0, served_retention_s=10.0)
    state.record_served(Served("old", "u", "champion", "v"))
    state.apply_once("f:cache", lambda con: state.bump_generation(con, "u"))
    now = _time.time()
    monkeypatch.setattr("smartreco.serving.graph_state.time.time", lambda: now + 50.0)
    state.prune()
    assert state.served("old") is None and state.done("f:cache")  # answers go first, effect keys later
    monkeypatch.setattr("smartreco.serving.graph_state.time.time", lambda: now + 500.0)
    state.prune()
    assert not state.done("f:cache")
