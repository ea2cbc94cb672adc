"""kfp.local evaluates the gate's dsl.If: when the gate step returns True the deploy step runs (and records a
local deploy); when it returns False it does not. The same condition form as pipelines/training.py."""


import json

import pytest
from kfp import dsl

from components.common import component
from components.deploy.component import deploy

pytestmark = [pytest.mark.integration]


@component()
def fake_gate(promoted: bool, gate: dsl.Output[dsl.Artifact]) -> bool:
    import json

    with open(gate.path, "w") as fh:
        json.dump({"promoted": promoted, "model_uris": {"hybrid": "models:/smartreco-hybrid/9"}}, fh)
    return promoted


def _pipeline(bundle_uri: str):
    @dsl.pipeline(name="gate-branch")
    def gate_branch(promoted: bool) -> None:
        bundle = dsl.importer(artifact_uri=bundle_uri, artifact_class=dsl.Model, reimport=False)
        g = fake_gate(promoted=promoted)
        with dsl.If(g.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - KFP condition
            deploy(bundle=bundle.output, gate=g.outputs["gate"], model_version="9", target="local")

    return gate_branch


@pytest.mark.parametrize("promoted", [True, False])
def test_deploy_runs_only_when_the_gate_returns_true(tmp_path, monkeypatch, promoted):
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    from pipelines.runner import run_pipeline

    run = run_pipeline(_pipeline(str(bundle)), {"promoted": promoted}, runner="subprocess",
                       pipeline_root=tmp_path / "root")
    record = tmp_path / "runs" / "deploy" / "current.json"
    assert record.exists() is promoted
    assert (run.artifact("deploy", "deployment") is not None) is promoted
    if promoted:
        doc = json.loads(record.read_text())
        assert doc["target"] == "local" and doc["model_uris"]["hybrid-a"] == str(bundle)
