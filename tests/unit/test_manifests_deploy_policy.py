"""The pipeline's deploy rights on a cluster: the Role names the one SeldonDeployment, and the
ValidatingAdmissionPolicy lets the pipeline identities change only model URIs and image tags.

The policy's CEL is evaluated here with cel-python (plus the two Kubernetes string functions it uses,
``lastIndexOf`` and ``substring``) on the real SeldonDeployment: the deploy step's own change
(:func:`smartreco.deploy.render_seldon`) passes, every other kind of change is refused. What this does
not show: the API server's type check and cost estimate of the CEL (no cluster here)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

celpy = pytest.importorskip("celpy")
from celpy import celtypes  # noqa: E402

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
KFP = ROOT / "manifests/base/platform/kfp"
SDEP = ROOT / "manifests/base/seldon/seldondeployment.yaml"
SCHEMA = ROOT / "manifests/schemas/machinelearning.seldon.io_seldondeployment_v1.json"
PIPELINE = "system:serviceaccount:smartreco:smartreco-pipeline"


def _docs(path: Path) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}


POLICY = _docs(KFP / "deploy-policy.yaml")
RBAC = _docs(KFP / "rbac.yaml")

_FUNCS = {
    "lastIndexOf": lambda s, sub: celtypes.IntType(str(s).rfind(str(sub))),
    "substring": lambda s, a, b=None: celtypes.StringType(str(s)[int(a) :] if b is None else str(s)[int(a) : int(b)]),
}


@pytest.fixture(scope="module")
def programs():
    env = celpy.Environment()
    spec = POLICY["ValidatingAdmissionPolicy"]["spec"]
    match = [env.program(env.compile(m["expression"]), functions=_FUNCS) for m in spec["matchConditions"]]
    rules = [(v["message"], env.program(env.compile(v["expression"]), functions=_FUNCS)) for v in spec["validations"]]
    return match, rules


def _refusals(programs, old: dict, new: dict, user: str = PIPELINE, first: bool = False) -> list[str] | None:
    """None when the policy does not apply to ``user``; else the messages of the failing validations
    (``first``: stop at the first one, as the API server may; cel-python is slow)."""
    match, rules = programs
    act = {
        "object": celpy.json_to_cel(_small(new)),
        "oldObject": celpy.json_to_cel(_small(old)),
        "request": celpy.json_to_cel({"userInfo": {"username": user}}),
    }
    if not all(bool(p.evaluate(act)) for p in match):
        return None
    out = []
    for msg, p in rules:
        if not bool(p.evaluate(act)):
            out.append(msg)
            if first:
                break
    return out


def _small(doc: dict) -> dict:
    """The first three node containers only: the rules compare containers pairwise, and cel-python takes
    seconds for all eight; what is checked per container does not depend on how many there are."""
    doc = copy.deepcopy(doc)
    for p in doc["spec"]["predictors"]:
        for cs in p.get("componentSpecs") or []:
            cs["spec"]["containers"] = cs["spec"]["containers"][:3]
    return doc


@pytest.fixture(scope="module")
def live() -> dict:
    """The deployment as the cluster holds it (registry image names as an overlay sets them)."""
    doc = yaml.safe_load(SDEP.read_text())
    text = json.dumps(doc).replace('"smartreco-serving:', '"registry.example.com/smartreco/smartreco-serving:')
    return json.loads(text.replace('"smartreco-pipeline:', '"registry.example.com/smartreco/smartreco-pipeline:'))


def _containers(doc: dict, init: bool = False) -> list[dict]:
    pod = doc["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    return pod["initContainers" if init else "containers"]


def _node(doc: dict, name: str) -> dict:
    stack = [doc["spec"]["predictors"][0]["graph"]]
    while stack:
        node = stack.pop()
        if node["name"] == name:
            return node
        stack.extend(node.get("children") or [])
    raise KeyError(name)


def test_the_deploy_steps_own_change_is_allowed(programs, live):
    from smartreco.deploy import render_seldon

    uris = {"hybrid": "models:/smartreco-hybrid/7", "cf": "models:/smartreco-cf/7", "cb": "runs:/abc123/cb"}
    new = render_seldon(uris, arm="challenger", version="7",
                        image="registry.example.com/smartreco/smartreco-serving:0.2.0")
    _containers(new, init=True)[0]["image"] = "registry.example.com/smartreco/smartreco-pipeline:0.2.0"
    new["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    assert new != live and _node(new, "cf-b")["parameters"][0]["value"] == "models:/smartreco-cf/7"
    assert _refusals(programs, live, new) == []
    assert _refusals(programs, live, copy.deepcopy(live)) == []


def test_what_a_cluster_deploy_writes_back_is_allowed(programs, live):
    """:func:`smartreco.deploy.patch_live` (what ``deploy --target cluster`` sends with ``kubectl replace``) over
    an overlay's live object: allowed; the rendered base file over the same object: refused."""
    from smartreco.deploy import patch_live, render_seldon

    uris = {"hybrid": "models:/smartreco-hybrid/8", "cf": "models:/smartreco-cf/8", "cb": "models:/smartreco-cb/8"}
    assert _refusals(programs, live, patch_live(live, uris, arm="challenger", version="8")) == []
    assert _refusals(programs, live, render_seldon(uris, arm="challenger", version="8"), first=True)


def _mutations():
    def cmd(d):
        _containers(d)[0]["command"] = ["sh", "-c", "cat /var/run/secrets/*"]

    def env(d):
        _containers(d)[1].setdefault("env", []).append(
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "smartreco-postgres", "key": "password"}}})

    def volume(d):
        d["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["volumes"].append(
            {"name": "s", "secret": {"secretName": "smartreco-object-store"}})

    def account(d):
        d["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["serviceAccountName"] = "smartreco-pipeline"

    def repo(d):
        _containers(d)[2]["image"] = "evil.example.com/smartreco-serving:0.1.0"

    def init_repo(d):
        _containers(d, init=True)[0]["image"] = "evil.example.com/smartreco-pipeline:0.1.0"

    def digest_trick(d):
        _containers(d)[0]["image"] = "registry.example.com/smartreco/smartreco-serving:0.1.0/../evil"

    def executor_env(d):
        d["spec"]["predictors"][0]["svcOrchSpec"] = {"env": [{"name": "SELDON_LOG_LEVEL", "value": "DEBUG"}]}

    def router_param(d):
        params = _node(d, "ab-router")["parameters"]
        params[0] = {**params[0], "value": params[0]["value"] + "x"}

    def uri_scheme(d):
        next(p for p in _node(d, "cf-a")["parameters"] if p["name"] == "model_uri")["value"] = "file:///etc"

    def add_node(d):
        _node(d, "hybrid-a")["children"].append({"name": "evil", "type": "MODEL"})

    def logger(d):
        _node(d, "ab-router")["logger"] = {"mode": "all", "url": "http://evil.example.com"}

    def traffic(d):
        d["spec"]["predictors"][0]["replicas"] = 9

    def predictor(d):
        d["spec"]["predictors"].append({**copy.deepcopy(d["spec"]["predictors"][0]), "name": "shadow", "shadow": True})

    def label(d):
        d["metadata"]["labels"]["app.kubernetes.io/name"] = "other"

    def annotation(d):
        d["metadata"]["annotations"]["seldon.io/rest-timeout"] = "1"

    def pod_labels(d):
        d["spec"]["predictors"][0]["componentSpecs"][0]["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"

    def protocol(d):
        d["spec"]["protocol"] = "v2"

    pods, graph = "spec.predictors[].componentSpecs:", "spec.predictors[].graph:"
    return [(cmd, pods), (env, pods), (volume, pods), (account, pods), (repo, pods), (init_repo, pods),
            (digest_trick, pods), (pod_labels, pods), (executor_env, "spec.predictors:"), (router_param, graph),
            (uri_scheme, graph), (add_node, graph), (logger, graph), (traffic, "spec.predictors:"),
            (predictor, "spec.predictors:"), (label, "metadata:"), (annotation, "metadata:"), (protocol, "spec:")]


@pytest.mark.parametrize(("mutate", "rule"), _mutations(), ids=lambda f: getattr(f, "__name__", ""))
def test_any_other_change_by_the_pipeline_is_refused(programs, live, mutate, rule):
    new = copy.deepcopy(live)
    mutate(new)
    assert new != live
    refused = _refusals(programs, live, new, first=True)
    assert refused, "the policy let this change through"
    assert refused[0].startswith(rule), refused
    assert _refusals(programs, live, new, user="kubernetes-admin") is None  # the admin is not matched


def test_every_field_of_the_crd_is_compared():
    """The CEL compares fields by name: a field it does not mention would pass unchecked."""
    text = json.dumps(POLICY["ValidatingAdmissionPolicy"]["spec"]["validations"])
    props = json.loads(SCHEMA.read_text())["openAPIV3Schema"]["properties"]["spec"]["properties"]
    pred = props["predictors"]["items"]["properties"]
    cs = pred["componentSpecs"]["items"]["properties"]
    groups = [props, pred, cs, cs["spec"]["properties"], cs["spec"]["properties"]["containers"]["items"]["properties"],
              pred["graph"]["properties"]]
    missing = sorted({f for g in groups for f in g if not re.search(rf"\.{re.escape(f)}\b", text)})
    assert missing == []


def test_the_role_names_the_objects_and_the_policy_the_roles_subjects():
    role, binding = RBAC["Role"], RBAC["RoleBinding"]
    for rule in role["rules"]:
        if rule["apiGroups"] != [""]:
            assert rule.get("resourceNames"), rule
            assert not {"create", "delete", "deletecollection", "list", "watch", "*"} & set(rule["verbs"]), rule
    sdep = next(r for r in role["rules"] if r["resources"] == ["seldondeployments"])
    assert sdep["resourceNames"] == [yaml.safe_load(SDEP.read_text())["metadata"]["name"]]
    users = {f"system:serviceaccount:{s['namespace']}:{s['name']}" for s in binding["subjects"]}
    cond = POLICY["ValidatingAdmissionPolicy"]["spec"]["matchConditions"][0]["expression"]
    assert set(re.findall(r"'(system:serviceaccount:[^']+)'", cond)) == users
    bind = POLICY["ValidatingAdmissionPolicyBinding"]["spec"]
    assert bind["validationActions"] == ["Deny"] and bind["policyName"] == "smartreco-deploy-changes"
