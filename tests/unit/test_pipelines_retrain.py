"""The retrain trigger: locally it runs the training pipeline, on a cluster it submits it (via the CLI)."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest

from components.retrain.component import retrain

pytestmark = [pytest.mark.unit]


@pytest.fixture
def fake_run(monkeypatch):
    calls = []

    def run(cmd, env, capture_output, text):
        calls.append((cmd, env))
        out = json.dumps({"run_dir": "/runs/x"}) if "run" in cmd else "pipeline p\nhttp://kfp/#/runs/details/r1"
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setenv("_KFP_RUNTIME", "true")
    monkeypatch.delenv("KFP_HOST", raising=False)
    return calls


def test_local_mode_runs_the_training_pipeline(tmp_path, fake_run):
    out = SimpleNamespace(path=str(tmp_path / "trigger.json"))
    assert retrain.python_func(trigger=out, reason="drift", training_args='{"sample_users": 9}') == "/runs/x"
    cmd, env = fake_run[0]
    assert cmd[cmd.index("run"):] == ["run", "training", "--local", "--runner", "subprocess", "--json", "--param",
                                      "sample_users=9"]
    assert "_KFP_RUNTIME" not in env  # a fresh Python where kfp.dsl can define pipelines
    assert json.loads((tmp_path / "trigger.json").read_text())["mode"] == "local"


def test_cluster_mode_submits_and_record_mode_only_records(tmp_path, fake_run):
    out = SimpleNamespace(path=str(tmp_path / "t.json"))
    assert retrain.python_func(trigger=out, host="http://kfp") == "http://kfp/#/runs/details/r1"
    cmd, _ = fake_run[0]
    assert cmd[cmd.index("submit"):cmd.index("submit") + 4] == ["submit", "training", "--host", "http://kfp"]
    assert retrain.python_func(trigger=out, mode="record") == "recorded" and len(fake_run) == 1
    with pytest.raises(ValueError, match="mode"):
        retrain.python_func(trigger=out, mode="moon")


class FakeClient:
    """Records the kfp.Client calls submit() makes."""

    def __init__(self):
        self.calls = []

    def get_pipeline_id(self, name):
        self.calls.append(("get_pipeline_id", name))
        return None

    def upload_pipeline(self, path, pipeline_name):
        self.calls.append(("upload_pipeline", pipeline_name))
        return SimpleNamespace(pipeline_id="p1")

    def upload_pipeline_version(self, path, pipeline_version_name, pipeline_id):
        self.calls.append(("upload_pipeline_version", pipeline_id))
        return SimpleNamespace(pipeline_version_id="v1")

    def create_experiment(self, name, namespace=None):
        return SimpleNamespace(experiment_id="e1")

    def run_pipeline(self, **kw):
        self.calls.append(("run_pipeline", kw["params"]))
        return SimpleNamespace(run_id="r1")

    def create_recurring_run(self, **kw):
        self.calls.append(("create_recurring_run", kw["cron_expression"]))
        return SimpleNamespace(recurring_run_id="rr1")


def test_submit_uploads_a_version_and_creates_runs_or_recurring_runs():
    from pipelines.submit import submit

    client = FakeClient()
    done = submit("training", host="http://kfp:8080/", arguments={"sample_users": 5}, client=client)
    assert done.url == "http://kfp:8080/#/runs/details/r1" and not done.recurring
    assert ("upload_pipeline", "smartreco-training") in client.calls
    assert ("run_pipeline", {"sample_users": 5}) in client.calls
    sched = submit("drift", host="http://kfp", schedule="0 0 3 * * *", client=FakeClient())
    assert sched.recurring and sched.url.endswith("/#/recurringruns/details/rr1")
