"""The compiled pipelines: round trip, images, caching, retries, resources and the deploy gate."""

from __future__ import annotations

import pytest
import yaml

from pipelines import compile as PC
from pipelines.training import RESOURCES, RETRIED, UNCACHED
from smartreco.images import PIPELINE_IMAGE

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("yaml")
    return {name: yaml.safe_load(path.read_text()) for name, path in PC.compile_all(out).items()}


def _tasks(doc: dict) -> dict[str, dict]:
    """Every task of the root DAG and of nested DAGs (dsl.If bodies), by task name."""
    out = dict(doc["root"]["dag"]["tasks"])
    for comp in doc["components"].values():
        out.update((comp.get("dag") or {}).get("tasks", {}))
    return out


def _executor_of(doc: dict, task: dict) -> dict:
    comp = doc["components"][task["componentRef"]["name"]]
    return doc["deploymentSpec"]["executors"][comp["executorLabel"]]["container"]


def test_all_three_round_trip_through_the_kfp_loader(tmp_path):
    from kfp import components

    for name, path in PC.compile_all(tmp_path).items():
        loaded = components.load_component_from_file(str(path))
        assert loaded.name == PC.get_pipeline(name).name
        again = tmp_path / f"{name}-again.yaml"
        from kfp import compiler

        compiler.Compiler().compile(loaded, str(again))
        assert yaml.safe_load(again.read_text())["root"] == yaml.safe_load(path.read_text())["root"]


def test_every_step_runs_in_the_project_image_without_inline_installs(compiled):
    for name, doc in compiled.items():
        executors = doc["deploymentSpec"]["executors"]
        assert executors, name
        for label, spec in executors.items():
            container = spec["container"]
            assert container["image"] == PIPELINE_IMAGE, (name, label)
            script = " ".join(container.get("command", []) + container.get("args", []))
            assert "pip install" not in script, (name, label)
            assert "kfp.dsl.executor_main" in script, (name, label)


def test_side_effect_steps_are_never_cached_and_pure_ones_are(compiled):
    tasks = _tasks(compiled["training"])
    assert {"register", "deploy", "summary", "materialize-features", "ingest"} <= UNCACHED
    for name, task in tasks.items():
        if name.startswith("condition"):
            continue
        cached = bool(task.get("cachingOptions", {}).get("enableCache"))
        assert cached == (name not in UNCACHED), name
    for name, doc in (("drift", compiled["drift"]), ("batch", compiled["batch"])):
        for tname, task in _tasks(doc).items():
            if not tname.startswith("condition"):
                assert not task.get("cachingOptions", {}).get("enableCache"), (name, tname)


def test_flaky_steps_retry_and_every_step_has_requests_and_limits(compiled):
    doc = compiled["training"]
    tasks = _tasks(doc)
    for name, n in RETRIED.items():
        assert tasks[name]["retryPolicy"]["maxRetryCount"] == n, name
    assert "retryPolicy" not in tasks["train-hybrid"]
    for name in RESOURCES:
        res = _executor_of(doc, tasks[name])["resources"]
        assert res.get("cpuLimit") and res.get("memoryLimit") and res.get("resourceCpuRequest"), name


def test_deploy_runs_only_inside_the_gate_branch(compiled):
    doc = compiled["training"]
    root = doc["root"]["dag"]["tasks"]
    assert "deploy" not in root
    gate = next(t for n, t in root.items() if n.startswith("condition"))
    assert "summary-Output" in gate["triggerPolicy"]["condition"]
    body = doc["components"][gate["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"deploy"}
    drift_root = compiled["drift"]["root"]["dag"]["tasks"]
    cond = next(t for n, t in drift_root.items() if n.startswith("condition"))
    assert "drift-check-Output" in cond["triggerPolicy"]["condition"]


def test_training_parameters_cover_data_sizes_model_gate_and_deploy(compiled):
    params = compiled["training"]["root"]["inputDefinitions"]["parameters"]
    for key in ("source", "sample_users", "embedding_dim", "gate_min_ndcg", "deploy_target", "content_encoder"):
        assert key in params, key


def test_one_embedding_cache_reaches_every_step_that_encodes(compiled):
    """build-features, train-cb and evaluate encode item text with MiniLM: each gets the pipeline's own
    ``embedding_cache_dir`` (not a default of its component), so a run encodes each text once; so does any
    later step whose component takes the input."""
    doc = compiled["training"]
    assert "embedding_cache_dir" in doc["root"]["inputDefinitions"]["parameters"]
    takes = {name for name, task in _tasks(doc).items()
             if "embedding_cache_dir" in (doc["components"][task["componentRef"]["name"]].get("inputDefinitions")
                                          or {}).get("parameters", {})}
    assert takes >= {"build-features", "train-cb", "evaluate"}
    for name in takes:
        given = _tasks(doc)[name]["inputs"]["parameters"].get("embedding_cache_dir")
        assert given == {"componentInputParameter": "embedding_cache_dir"}, (name, given)


def test_evaluate_scores_the_bundle_register_registers_and_deploy_deploys(compiled):
    """The gate judges the model it promotes: evaluate's ``bundle`` (the recipe it refits) is train-hybrid's
    bundle output, the same artifact register registers and deploy deploys."""
    tasks = _tasks(compiled["training"])
    hybrid_bundle = {"taskOutputArtifact": {"outputArtifactKey": "bundle", "producerTask": "train-hybrid"}}
    for name in ("evaluate", "register"):
        assert tasks[name]["inputs"]["artifacts"].get("bundle") == hybrid_bundle, name
    # deploy sits in the gate's dsl.If: its bundle is the condition's channel of the same output
    channel = tasks["deploy"]["inputs"]["artifacts"]["bundle"]["componentInputArtifact"]
    gate = next(t for n, t in compiled["training"]["root"]["dag"]["tasks"].items() if n.startswith("condition"))
    assert gate["inputs"]["artifacts"][channel] == hybrid_bundle
    evaluate = compiled["training"]["components"][tasks["evaluate"]["componentRef"]["name"]]
    assert evaluate["inputDefinitions"]["artifacts"]["bundle"]["artifactType"]["schemaTitle"] == "system.Model"


def test_the_ui_gets_metrics_html_and_markdown_artifacts(compiled):
    types = set()
    for comp in compiled["training"]["components"].values():
        for art in (comp.get("outputDefinitions") or {}).get("artifacts", {}).values():
            types.add(art["artifactType"]["schemaTitle"])
    assert {"system.Metrics", "system.HTML", "system.Markdown"} <= types
