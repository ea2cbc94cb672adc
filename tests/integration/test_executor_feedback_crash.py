"""SIGKILL of the REAL executor process (``python -m inference_graph.executor --in-process``) during a
bounded loopback feedback load: no acknowledged feedback is lost, the log reopens and reads cleanly,
and after a restart every retried id that had been acknowledged comes back as a duplicate."""

import sys

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import graph_fake_bundle as fake  # noqa: E402

from smartreco.feedback.executor_crashcheck import run_executor_crash

pytestmark = [pytest.mark.serving, pytest.mark.integration]


def test_sigkill_during_feedback_load_loses_no_acknowledged_feedback(tmp_path):
    bundle = fake.write(tmp_path / "bundle")
    r = run_executor_crash(
        tmp_path / "trial",
        n_feedback=600,
        kill_after=120,
        concurrency=8,
        overrides={"*": {"model_uri": str(bundle)}, "ab-router": {"store": str(tmp_path / "arms.sqlite")}},
        env=fake.node_env(),
        python=sys.executable,
    )
    print(r)
    assert r["killed"] and r["returncode"] == -9
    assert r["acked"] >= 120 and r["sent"] < 600  # killed mid-load, not after it
    assert r["missing_acked"] == []
    assert r["acked"] <= r["recovered"] <= r["sent"]
    assert r["corrupt"] == 0 and r["stored_twice"] == 0
    assert r["dataset_feedback_rows"] == r["recovered"] and r["impressions"] >= 1
    # restart on the same log, retry every sent id: acked ones are duplicates, nothing is stored twice
    assert r["resent_acked"] == r["resent"] == r["sent"]
    assert r["resent_acked_before_not_duplicate"] == []
    assert r["after_resend_all_sent_present"] and r["after_resend_stored_twice"] == 0
