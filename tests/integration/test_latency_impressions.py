"""Write-behind impressions (the latency fix): an answer does not wait for its impression's fsync,
but the impression is durable before any later feedback about it is acknowledged, and a graceful stop
writes what is queued. No timing assertions: a gate holds the log write to make the order visible."""

import asyncio
import threading

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

from inference_graph.executor.engine import GraphEngine  # noqa: E402
from inference_graph.executor.feedback_writer import FeedbackWriter  # noqa: E402
from inference_graph.executor.graph import load_graph, override_parameters  # noqa: E402
from inference_graph.executor.transport import InProcessTransport  # noqa: E402
from smartreco.feedback import FEEDBACK, IMPRESSION, FeedbackLog, iter_records  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]


class GatedLog(FeedbackLog):
    """A real log whose writes wait for ``gate`` (a slow disk, made deterministic)."""

    gate: threading.Event

    def append_many(self, payloads, kind):
        assert self.gate.wait(30)
        return super().append_many(payloads, kind=kind)


def _engine(tmp_path, monkeypatch, sync: bool):
    import graph_fake_bundle as fake

    for k, v in fake.node_env().items():
        if k != "PYTHONPATH":
            monkeypatch.setenv(k, v)
    g = load_graph()
    override_parameters(g, {"*": {"model_uri": str(fake.write(tmp_path / "bundle"))}, "ab-router": {"store": "memory"}})
    log = GatedLog(str(tmp_path / "log"))
    log.gate = threading.Event()
    writer = FeedbackWriter(log)
    return GraphEngine(g, InProcessTransport(g.nodes()), writer=writer, sync_impressions=sync), log, writer


@pytest.mark.parametrize("sync", [False, True])
def test_answer_leaves_before_the_impression_fsync_only_in_async_mode(tmp_path, monkeypatch, sync):
    async def scenario():
        engine, log, writer = _engine(tmp_path, monkeypatch, sync)
        writer.start()
        predict = asyncio.ensure_future(engine.predict({"jsonData": {"user_id": "7", "num_recommendations": 5}}))
        await asyncio.sleep(0.5)
        answered_while_blocked = predict.done()
        log.gate.set()
        resp = await predict
        await writer.close()
        return answered_while_blocked, resp, log

    answered_while_blocked, resp, log = asyncio.run(scenario())
    assert answered_while_blocked is (not sync)
    imps = [r for r in iter_records(log.directory) if r["kind"] == IMPRESSION]
    assert [r["id"] for r in imps] == [resp["meta"]["puid"]]  # written in both modes
    assert "impression_log" not in resp["meta"]["tags"]


def test_feedback_ack_waits_until_the_impression_it_is_about_is_durable(tmp_path, monkeypatch):
    async def scenario():
        engine, log, writer = _engine(tmp_path, monkeypatch, sync=False)
        writer.start()
        resp = await engine.predict({"jsonData": {"user_id": "7", "num_recommendations": 5}})
        item = resp["jsonData"]["recommendations"][0]["item_id"]
        fb = asyncio.ensure_future(engine.feedback({
            "request": {"jsonData": {"user_id": "7"}}, "response": resp, "reward": 1.0,
            "truth": {"item_id": item, "interaction_type": "click"},
        }))
        await asyncio.sleep(0.5)
        acked_while_blocked = fb.done()
        log.gate.set()
        out = await fb
        on_disk_at_ack = {(r["kind"], r["id"]) for r in iter_records(log.directory)}
        await writer.close()
        return acked_while_blocked, resp, out, on_disk_at_ack

    acked_while_blocked, resp, out, on_disk = asyncio.run(scenario())
    assert not acked_while_blocked
    assert (IMPRESSION, resp["meta"]["puid"]) in on_disk
    assert (FEEDBACK, out["meta"]["tags"]["feedback_id"]) in on_disk
