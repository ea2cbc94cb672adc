"""Issue #16 done-when: the graph learns the same way under our executor and under Seldon's.

One flow, two executors, both graph shapes (five nodes; the fused arms of manifests/components/fused-graph):
(1) the local executor (``smartreco serve``'s, in-process nodes, the event service it starts) and (2) a
minimal walker written here with Seldon Core v1 executor semantics (``executor/predictor/
predictor_process.go``: input step, route, children, aggregate, ``meta.routing`` injection, children-first
feedback along ``meta.routing``, the request logger's CloudEvents) that calls the node classes through
seldon-core's own wrapper dispatch (``seldon_core.seldon_methods``: JSON in, the ``Feedback`` proto for
feedback, as the microservice does). The walker holds no product code: every effect (request id, durable
feedback append, bandit reward, history, popularity, cache) must come from the nodes.

The flow: a user's clicks, likes and purchases on items of a category absent from their list make the next
list gain items of that category it did not hold; the event log holds one impression per answer and every
acknowledged feedback once; a retried feedback id changes nothing more (log, arms, history, popularity).
"""

from __future__ import annotations

import importlib
import json
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import yaml  # noqa: E402
from graph_fake_bundle import CATEGORIES, GraphThread, write  # noqa: E402

from smartreco.experiments.bandits import SQLiteArmStore  # noqa: E402
from smartreco.feedback import FEEDBACK, IMPRESSION, iter_records  # noqa: E402
from smartreco.serving.graph_state import GraphState  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifests/base/seldon/seldondeployment.yaml"
N = 5  # a cold list of 5 popular items spans 5 of the 6 categories: Romance is absent


def _cluster(bundle) -> None:
    """Category-clustered item vectors (as learned embeddings are): history in a category pulls it in."""
    bundle = getattr(bundle, "base", bundle)  # a node serving live items wraps its bundle in a LiveView
    rng = np.random.default_rng(1)
    eye = np.eye(8)
    bundle.item_vec = {i: eye[CATEGORIES.index(bundle.category[i])] + rng.normal(0, 0.05, 8) for i in bundle.items}


# ------------------------------------------------------------------------------------ the Seldon walker
class SeldonWalker:
    """Seldon Core v1's executor, reduced to what this graph uses. Nothing here knows the product."""

    def __init__(self, predictor: dict, overrides: dict[str, dict[str, str]], logger_url: str) -> None:
        from seldon_core.microservice import parse_parameters

        containers = {
            c["name"]: c for spec in predictor["componentSpecs"] for c in spec["spec"]["containers"]
        }
        self.graph = predictor["graph"]
        self.logger_url = logger_url
        self.models: dict[str, object] = {}
        stack = [self.graph]
        while stack:
            node = stack.pop()
            stack.extend(node.get("children") or [])
            env = {e["name"]: e.get("value") for e in containers[node["name"]]["env"]}
            module, _, cls = env["MODEL_NAME"].rpartition(".")
            mine = overrides.get(node["name"]) or {}  # a node's own overrides, then "*" where it has the name
            params = [
                {**p, "value": str(mine.get(p["name"], (overrides.get("*") or {}).get(p["name"], p["value"])))}
                for p in node.get("parameters") or []
            ]
            given = {p["name"] for p in params}
            params += [{"name": k, "type": "STRING", "value": str(v)} for k, v in mine.items() if k not in given]
            model = getattr(importlib.import_module(module), cls)(**parse_parameters(params))
            model.name = node["name"]  # PREDICTIVE_UNIT_ID
            model.load()
            self.models[node["name"]] = model

    class _Metrics:  # the wrapper's SeldonMetrics, not under test here
        def update(self, *_a) -> None: ...
        def update_reward(self, *_a) -> None: ...

    def _log(self, node: dict, ce_type: str, message: dict, puid: str) -> None:
        logger = node.get("logger")
        modes = {"request": ("all", "request"), "response": ("all", "response"), "feedback": ("all", "response")}
        if not logger or logger.get("mode", "all") not in modes[ce_type.rsplit(".", 1)[-1]]:
            return
        headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": str(uuid.uuid4()),
                   "ce-type": ce_type, "ce-source": "http://walker", "ce-requestid": puid,
                   "ce-modelid": node["name"]}  # fmt: skip
        req = urllib.request.Request(self.logger_url, data=json.dumps(message).encode(), headers=headers)
        with urllib.request.urlopen(req, timeout=10) as r:  # Seldon's is async; order does not matter here
            r.read()

    def predict(self, message: dict) -> dict:
        routing: dict[str, int] = {}
        puid = uuid.uuid4().hex  # Seldon keeps its puid in a header; the graph makes its own request id
        out = self._predict(self.graph, message, routing, puid)
        return {**out, "meta": {**(out.get("meta") or {}), "routing": routing}}  # routing injection

    def _predict(self, node: dict, msg: dict, routing: dict, puid: str) -> dict:
        from seldon_core import seldon_methods as sm

        name, kind, methods = node["name"], node.get("type"), node.get("methods") or []
        model, metrics = self.models[name], self._Metrics()
        if kind in ("MODEL", "TRANSFORMER") or "TRANSFORM_INPUT" in methods:
            self._log(node, "io.seldon.serving.inference.request", msg, puid)
            step = sm.transform_input if kind == "TRANSFORMER" or "TRANSFORM_INPUT" in methods else sm.predict
            msg = step(model, msg, metrics)
            routing[name] = -1
            self._log(node, "io.seldon.serving.inference.response", msg, puid)
        children = node.get("children") or []
        if not children:
            return msg
        route = -1
        if kind == "ROUTER":
            data = sm.route(model, msg, metrics)["data"]  # a jsonData request: the route comes as a tensor
            route = int(np.ravel(data["ndarray"] if "ndarray" in data else data["tensor"]["values"])[0])
        outs = [self._predict(c, msg, routing, puid) for c in (children if route == -1 else [children[route]])]
        routing[name] = route
        if kind != "COMBINER":
            return outs[0]
        self._log(node, "io.seldon.serving.inference.request", msg, puid)
        out = sm.aggregate(model, {"seldonMessages": outs}, metrics)
        self._log(node, "io.seldon.serving.inference.response", out, puid)
        return out

    def feedback(self, message: dict) -> dict:
        return self._feedback(self.graph, message, uuid.uuid4().hex)

    def _feedback(self, node: dict, fb: dict, puid: str) -> dict:
        from google.protobuf import json_format
        from seldon_core import seldon_methods as sm
        from seldon_core.utils import json_to_feedback

        self._log(node, "io.seldon.serving.feedback", fb, puid)
        route = ((fb.get("response") or {}).get("meta") or {}).get("routing", {}).get(node["name"], -1)
        children = node.get("children") or []
        for child in children if route == -1 else [children[route]]:  # children first; an error stops here
            self._feedback(child, fb, puid)
        if node.get("type") in ("MODEL", "ROUTER") or "SEND_FEEDBACK" in (node.get("methods") or []):
            reply = sm.send_feedback(self.models[node["name"]], json_to_feedback(fb), node["name"], self._Metrics())
            return json_format.MessageToDict(reply)
        return fb


# ------------------------------------------------------------------------------------ the shared flow
def _feedback_msg(user: str, answer: dict, item: str, kind: str, reward: float, fid: str) -> dict:
    """A feedback as a client sends it to Seldon: truth is a SeldonMessage, the id rides in it."""
    return {
        "request": {"jsonData": {"user_id": user}},
        "response": answer,
        "reward": reward,
        "truth": {"jsonData": {"item_id": item, "interaction_type": kind, "feedback_id": fid}},
    }


def _records(log_dir: Path) -> list[dict]:
    return list(iter_records(log_dir, dedupe=False)) if log_dir.exists() else []


def _await_impressions(log_dir: Path, request_ids: set[str], within_s: float = 20.0) -> list[dict]:
    """The request logger is asynchronous and best effort (as Seldon's): poll, bounded."""
    deadline = time.monotonic() + within_s
    while True:
        imps = [r for r in _records(log_dir) if r["kind"] == IMPRESSION]
        if request_ids <= {r["id"] for r in imps} or time.monotonic() > deadline:
            return imps
        time.sleep(0.1)


def _snapshot(state_path: Path, arms_path: Path, user: str, log_dir: Path) -> dict:
    state, store = GraphState(state_path), SQLiteArmStore(arms_path, "smartreco-ab")
    try:
        return {
            "history": state.history(user),
            "popular": {k: round(v, 3) for k, v in state.top_popular(20).items()},
            "arms": {a: (s.pulls, s.reward_sum) for a, s in store.stats(["champion", "challenger"]).items()},
            "log": len(_records(log_dir)),
        }
    finally:
        state.close()


def run_flow(predict, feedback, log_dir: Path, state_path: Path, arms_path: Path) -> None:
    user = f"newcomer-{uuid.uuid4().hex[:6]}"
    ask = {"jsonData": {"user_id": user, "num_recommendations": N}}
    first = predict(ask)
    held = {r["item_id"]: r["category"] for r in first["jsonData"]["recommendations"]}
    absent = [c for c in CATEGORIES if c not in held.values()]
    assert absent, held
    target = absent[0]
    picks = [str(k + 1) for k in range(240) if CATEGORIES[k % 6] == target and str(k + 1) not in held][:3]
    acked = []
    for item, kind, reward in zip(picks, ("click", "like", "purchase"), (1.0, 3.0, 5.0), strict=True):
        fid = f"fb-{uuid.uuid4().hex[:10]}"
        reply = feedback(_feedback_msg(user, first, item, kind, reward, fid))
        assert reply["meta"]["tags"]["feedback_id"] == fid, reply
        acked.append(fid)
    second = predict(ask)
    gained = [r["item_id"] for r in second["jsonData"]["recommendations"] if r["category"] == target]
    assert gained and not set(gained) & set(held), (held, second["jsonData"]["recommendations"])
    assert not set(picks) & {r["item_id"] for r in second["jsonData"]["recommendations"]}  # not re-recommended

    # the event log: one impression per answer, every acknowledged feedback once
    answers = {a["jsonData"]["request_id"] for a in (first, second)}
    assert len(answers) == 2 and None not in answers
    imps = _await_impressions(log_dir, answers)
    assert sorted(r["id"] for r in imps) == sorted(answers)
    fbs = [r for r in _records(log_dir) if r["kind"] == FEEDBACK]
    assert sorted(r["id"] for r in fbs) == sorted(acked)
    assert {r["request_id"] for r in fbs} == {first["jsonData"]["request_id"]}
    assert {r["item_id"] for r in fbs} == set(picks)

    # a retried feedback id changes nothing more
    before = _snapshot(state_path, arms_path, user, log_dir)
    assert before["history"][:3] == picks[::-1] and sum(p for p, _ in before["arms"].values()) >= 3
    again = feedback(_feedback_msg(user, first, picks[2], "purchase", 5.0, acked[2]))
    assert again["meta"]["tags"]["duplicate"] is True
    after = _snapshot(state_path, arms_path, user, log_dir)
    # live popularity decays with the clock (1 h half-life): equal but for the seconds between the two reads
    # (a busy machine's 3.999 vs 4.0 failed here); a re-applied purchase would add a whole count
    assert after.pop("popular") == pytest.approx(before.pop("popular"), rel=0.01)
    assert after == before


@pytest.fixture()
def overrides(tmp_path) -> dict:
    bundle = str(write(tmp_path / "bundle"))
    return {
        "*": {"model_uri": bundle},
        "ab-router": {"store": str(tmp_path / "arms.sqlite"), "mode": "epsilon_greedy"},
        "feature-transformer": {"push_feedback": "false"},
    }


SHAPES = pytest.mark.parametrize("fused", [False, True], ids=["five-node", "fused"])


@SHAPES
def test_local_executor_learns_logs_and_ignores_retries(tmp_path, fused):
    g = GraphThread(tmp_path, in_process=True, mode="epsilon_greedy", cache="local", fused=fused,
                    feedback_log=str(tmp_path / "events"))  # fmt: skip
    try:
        for obj in g.graph.engine.transport.objects.values():
            if getattr(obj, "bundle", None) is not None:
                _cluster(obj.bundle)

        def predict(msg):
            code, body = g.post("/api/v1.0/predictions", msg)
            assert code == 200, body
            return body

        def feedback(msg):
            # a 503 ("retry with the same feedback_id": the event service's fsync outlasted the node's timeout
            # on a busy machine) is retried as the contract tells a client to, a bounded number of times
            for _ in range(5):
                code, body = g.post("/api/v1.0/feedback", msg)
                if code != 503:
                    break
                time.sleep(1.0)
            assert code == 200, body
            return body

        run_flow(predict, feedback, tmp_path / "events", tmp_path / "graph-state" / "state.sqlite",
                 tmp_path / "arms.sqlite")  # fmt: skip
    finally:
        g.stop()


@SHAPES
def test_a_seldon_semantics_walker_gives_the_same_effects(tmp_path, overrides, monkeypatch, fused):
    from graph_fake_bundle import node_env

    from inference_graph.executor.event_service import EventServiceProcess
    from inference_graph.executor.fusion import fuse_arms

    predictor = yaml.safe_load(MANIFEST.read_text())["spec"]["predictors"][0]
    if fused:  # the graph manifests/components/fused-graph makes (tests/unit/test_graph_fusion.py)
        predictor = fuse_arms(predictor)
        bundle = overrides["*"]["model_uri"]
        overrides = {**overrides, "*": {"model_uri": bundle, "cf_model_uri": bundle, "cb_model_uri": bundle,
                                        "push_feedback": "false"}}  # fmt: skip

    events = EventServiceProcess(tmp_path / "events", tmp_path / "logs")
    url = events.start()
    try:
        for key, value in node_env().items():
            if key != "PYTHONPATH":
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("SMARTRECO_EVENTS_URL", url)
        monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "graph-state.sqlite"))
        walker = SeldonWalker(predictor, overrides, logger_url=url + "/")
        for model in walker.models.values():
            if getattr(model, "bundle", None) is not None:
                _cluster(model.bundle)
        run_flow(walker.predict, walker.feedback, tmp_path / "events", tmp_path / "graph-state.sqlite",
                 tmp_path / "arms.sqlite")  # fmt: skip
    finally:
        events.stop()
