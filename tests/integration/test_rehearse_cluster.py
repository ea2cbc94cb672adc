"""`smartreco rehearse up --overlay local` with MovieLens models registered in the rehearsal's MLflow: the rendered
local overlay runs as containers on the engine (PostgreSQL and Redis from the Debian-package images, MLflow on
PostgreSQL after its `db-upgrade` init container, Feast, the event service, the web app), then what the training
pipeline does to a cluster happens to it, and the graph is deployed the way the pipeline's deploy step does:

- Feast: the feature repo is applied to the cluster's registry (the object-store volume standing in for S3) and
  materialized into the rehearsal's Redis, from a pipeline-image container on the rehearsal's network
  (`smartreco.rehearse.steps`: the step pod Kubeflow would run; Kubeflow itself is not rehearsed);
- MLflow: the bundle's three pyfuncs are logged and registered through `http://mlflow:5000` from such a step,
  aliases `champion` and `challenger` on the new versions (what the graph's model URIs name);
- deploy: `smartreco.deploy.deploy(target="rehearsal")` patches the live SeldonDeployment's model URIs with the
  registered versions and `rehearse apply` rolls it out; its model-fetch init container
  (`python -m smartreco.tracking.model_fetch`) resolves the six alias URIs to those versions and downloads them.

Then, through the graph's Service: a REST and a gRPC prediction with explanations for a known MovieLens user, whose
`meta.tags.feature_source` is `online` (features from the Feast server over Redis); clicks on a category absent from
a list make the next list gain items of it; the event service's Redis stream holds the impressions and the
feedback; `smartreco ab report` runs over it; `rehearse down` leaves no container, network or volume.

"MovieLens" here is a sample: the first 120 users of the bundled ml-latest-small (data/ml-latest-small, ~19k
ratings, ~4.7k movies; CI has no network) and a small hybrid (PureSVD CF, hashed content, 60 trees) fitted by the
test, not the make demo bundle. Its time in the fresh-clone CI runs: benchmarks/results/ci_test_run.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from smartreco.feedback.dataset import iter_log
from smartreco.feedback.records import FEEDBACK, IMPRESSION
from smartreco.rehearse import patches, runner, steps
from smartreco.rehearse.docker_args import LABEL

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
NAME = f"smartreco-rehearsal-test-{os.getpid()}"
SAMPLE_USERS = 120
N = 10  # items per list

_FEAST_STEP = """
import sys
from smartreco.features.store import apply_repo, materialize
apply_repo(sys.argv[1])
materialize(sys.argv[1])
print("feast: applied and materialized", flush=True)
"""

# the benchmark's registration (benchmarks/rehearsal_mlflow.py): log once, register, both aliases on the new versions
_REGISTER_STEP = """
import json, sys
import mlflow
from smartreco.tracking import mlflow_tracking as T
client = T.configure()
with mlflow.start_run(run_name="rehearsal-test"):
    uris = T.log_bundle_models(sys.argv[1])
versions = {}
for kind, uri in uris.items():
    name = T.MODEL_NAMES[kind]
    versions[kind] = str(mlflow.register_model(uri, name).version)
    T.promote(client, name, versions[kind])
    client.set_registered_model_alias(name, T.CHALLENGER, versions[kind])
print("VERSIONS " + json.dumps(versions), flush=True)
"""

_GRPC = """
import json, sys, grpc
from google.protobuf import json_format
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc
with grpc.insecure_channel("smartreco-default.smartreco.svc.cluster.local:5001") as ch:
    msg = json_format.ParseDict(json.loads(sys.argv[1]), prediction_pb2.SeldonMessage())
    print(json.dumps(json_format.MessageToDict(prediction_pb2_grpc.SeldonStub(ch).Predict(msg, timeout=30))))
"""


def _movielens_sample():
    from smartreco.data import columns as C
    from smartreco.data.canonical import CanonicalData
    from smartreco.data.movielens import load_movielens

    ml = load_movielens()
    users = sorted(ml.interactions[C.USER_ID].unique(), key=int)[:SAMPLE_USERS]
    inter = ml.interactions[ml.interactions[C.USER_ID].isin(users)].reset_index(drop=True)
    items = ml.items[ml.items[C.ITEM_ID].isin(inter[C.ITEM_ID])].reset_index(drop=True)
    return CanonicalData(inter, items, ml.users[ml.users[C.USER_ID].isin(users)], source="movielens-sample")


def _bundle(data, folder: Path) -> Path:
    from smartreco.evaluation.split import temporal_split
    from smartreco.models.base import TrainData
    from smartreco.models.hybrid import HybridConfig, HybridRanker

    train = TrainData.from_interactions(temporal_split(data.interactions).train, data.items)
    cfg = HybridConfig(
        n_factors=16,
        nbr_k=30,
        k_cf=50,
        k_cooc=50,
        k_cb=20,
        k_pop=20,
        n_estimators=60,
        min_data_in_leaf=10,
        cb_dims=64,
        cf_backend="svd",
        content="hashed",
        n_folds=1,
    )
    HybridRanker(cfg, progress=False).fit(train).save_bundle(folder)
    return folder


def _feast_repo(data, tmp: Path) -> Path:
    """The pipeline's features and Feast repo, pointed at the cluster's registry and Redis: what the
    materialize step renders in a cluster (``${VARS}`` are expanded by Feast from the step's environment)."""
    import yaml

    from smartreco.features.build import build_features, hash_encode
    from smartreco.features.store import prepare_repo

    built = build_features(data, tmp / "features", encode=hash_encode)
    repo = prepare_repo(built.out_dir, tmp / "feast-repo", online="redis", redis_url="redis:6379")
    cfg = yaml.safe_load((repo / "feature_store.yaml").read_text())
    cfg["registry"] = "${FEAST_REGISTRY_PATH}"
    cfg["online_store"]["connection_string"] = "redis:6379,password=${REDIS_PASSWORD}"
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return repo


def _cli(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartreco", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _post(url: str, body: dict) -> dict:
    # the graph's Service name as Host (the local executor answers loopback and its Service's names only)
    headers = {"Content-Type": "application/json", "Host": "smartreco-default"}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        return json.loads(r.read())


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rehearsal(smartreco_images, manifest_tools, tmp_path_factory):  # noqa: ARG001 - images and kubectl must exist
    from smartreco.deploy import deploy
    from smartreco.tracking.mlflow_tracking import MODEL_NAMES

    tmp = tmp_path_factory.mktemp("rehearse")
    started = time.monotonic()
    data = _movielens_sample()
    bundle = _bundle(data, tmp / "bundle")
    repo = _feast_repo(data, tmp)
    env = {**os.environ, "SMARTRECO_REHEARSAL_DIR": str(tmp / "state")}
    # the platform; the graph comes with the first deploy, once models are registered (as on a cluster)
    up = _cli(
        "rehearse",
        "up",
        "--overlay",
        "local",
        "--name",
        NAME,
        "--skip",
        "smartreco",
        "--json",
        "--timeout",
        "1200",
        env=env,
        timeout=1800,
    )
    try:
        assert up.returncode == 0, f"rehearse up failed:\n{up.stderr[-6000:]}"
        out = json.loads(up.stdout)
        secrets = json.loads(Path(out["secrets_file"]).read_text())

        # the pipeline's Feast step: repo and features from the artifact bucket (staged into the volume for S3)
        features = steps.stage(NAME, tmp / "features", "features")
        (repo / "feature_data.txt").write_text(features + "\n")
        feast_repo = steps.stage(NAME, repo, "feast-repo")
        registry = f"{patches.OBJECT_STORE_MOUNT}/{patches.S3_KEYS['FEAST_REGISTRY_PATH']}"
        feast_log = steps.run_step(
            NAME,
            "materialize",
            ["python", "-c", _FEAST_STEP, feast_repo],
            {"REDIS_PASSWORD": secrets["smartreco-redis"]["password"], "FEAST_REGISTRY_PATH": registry},
        )
        # the pipeline's register step, through the MLflow Service
        registered = steps.run_step(
            NAME,
            "register",
            ["python", "-c", _REGISTER_STEP, steps.stage(NAME, bundle, "bundle")],
            {"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
        )
        versions = json.loads(registered.split("VERSIONS ", 1)[1].splitlines()[0])
        # the pipeline's deploy step (deploy_target=rehearsal): the live SeldonDeployment with the version URIs
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SMARTRECO_REHEARSAL_DIR", env["SMARTRECO_REHEARSAL_DIR"])
            deployed = deploy(
                {kind: f"models:/{MODEL_NAMES[kind]}/{v}" for kind, v in versions.items()},
                version=versions["hybrid"],
                target="rehearsal",
                rehearsal=NAME,
                out_dir=tmp / "deploy",
                timeout_s=1200,
            )
        yield {
            "up": out,
            "env": env,
            "tmp": tmp,
            "data": data,
            "secrets": secrets,
            "feast_log": feast_log,
            "versions": versions,
            "deployed": deployed,
            "setup_s": round(time.monotonic() - started, 1),
        }
    finally:
        down = _cli("rehearse", "down", "--name", NAME, env=env, timeout=600)
        assert down.returncode == 0, down.stderr[-2000:]
        left = runner.leftovers(NAME)
        assert left == {"containers": [], "networks": [], "volumes": []}, left
        # and by name, in case something it started had lost the label
        for kind in ("container", "network", "volume"):
            named = _docker(kind, "ls", *(["-a"] if kind == "container" else []), "-q", "--filter", f"name={NAME}")
            assert named.returncode == 0 and not named.stdout.split(), (kind, named.stdout, named.stderr)


def _graph(rehearsal: dict) -> tuple[str, str]:
    """(REST base URL of the graph's Service as the host reaches it: its proxy, ready pods only; the one predictor
    pod the deploy rolled out)."""
    (pod,) = runner.workload_pods(NAME, "SeldonDeployment/smartreco")
    base = rehearsal["up"]["endpoints"]["graph_rest"]
    assert base, rehearsal["up"]["endpoints"]
    return base, pod


def test_platform_mlflow_registry_and_model_fetch(rehearsal) -> None:
    out = rehearsal["up"]
    assert set(out["workloads"]) == {
        "Deployment/feast-feature-server",
        "Deployment/mlflow",
        "Deployment/smartreco-events",
        "Deployment/smartreco-web",
        "StatefulSet/redis",
        "StatefulSet/postgres",
    }
    for pods in out["workloads"].values():
        for pod in pods:
            # running; a restart or two while a dependency came up is what the kubelet does too
            assert all(
                c["state"] == "running" and c["restarts"] < runner.CRASH_LOOP_RESTARTS for c in pod["containers"]
            ), pod
    assert any(o["object"].startswith("CronJob/") for o in out["not_rehearsed"])
    assert Path(out["secrets_file"]).stat().st_mode & 0o777 == 0o600
    assert not Path(out["secrets_file"]).resolve().is_relative_to(ROOT)
    assert "feast: applied and materialized" in rehearsal["feast_log"]

    # MLflow migrated its schema once, in its init container, before the server started
    (mlflow_pod,) = runner.workload_pods(NAME, "Deployment/mlflow")
    init = _docker("logs", f"{NAME}-{mlflow_pod}-db-upgrade")
    assert "mlflow schema at head" in init.stdout + init.stderr, init.stderr[-2000:]

    # the registry is PostgreSQL's: one version of each model, the version the deploy named
    pg_user = rehearsal["secrets"]["smartreco-postgres"]["username"]
    rows = _docker(
        "exec",
        f"{NAME}-postgres-0-postgres",
        *["psql", "-h", "/var/run/postgresql", "-U", pg_user, "-d", "mlflow", "-Atc"],
        "select name, version from model_versions order by name",
    )
    assert rows.returncode == 0, rows.stderr
    assert rows.stdout.split() == [f"smartreco-{k}|{rehearsal['versions'][k]}" for k in ("cb", "cf", "hybrid")]

    # the deploy rolled the graph out with version URIs (models:/NAME/V, as on a cluster); model-fetch downloaded
    # every alias of SMARTRECO_MODEL_URIS and recorded its version, which is how the nodes found the deployed ones
    deployed = rehearsal["deployed"]
    assert deployed.target == "rehearsal" and deployed.applied, deployed
    _, pod = _graph(rehearsal)
    # `python -m smartreco.tracking.model_fetch`: each alias resolved to the version the register step made
    fetched = _docker("logs", f"{NAME}-{pod}-model-fetch").stdout.splitlines()
    expected = {
        f"fetched models:/smartreco-{kind}@{alias} (version {rehearsal['versions'][kind]}) -> /models/{kind}-{alias}"
        for kind in ("hybrid", "cf", "cb")
        for alias in ("champion", "challenger")
    }
    assert expected <= set(fetched), fetched


def _feedback(base: str, ask: dict, answer: dict, item: str, fid: str) -> dict:
    truth = {"item_id": item, "interaction_type": "click", "feedback_id": fid}
    return _post(
        f"{base}/api/v1.0/feedback", {"request": ask, "response": answer, "reward": 1.0, "truth": {"jsonData": truth}}
    )


def test_known_user_served_from_the_online_store_and_learns_a_new_category(rehearsal) -> None:
    from smartreco.data import columns as C

    base, pod = _graph(rehearsal)
    inter, items = rehearsal["data"].interactions, rehearsal["data"].items
    # a known user with the shortest history (20 ratings): three clicks are a sizeable part of their profile, as
    # for a new customer; for a user with hundreds of ratings three clicks rightly move the list less
    sizes = inter[C.USER_ID].value_counts()
    user = str(min(sizes.index, key=lambda u: (sizes[u], int(u))))
    ask = {"jsonData": {"user_id": user, "num_recommendations": N}}
    # Feast's server reads its registry again every 60 s (`feast serve` default): bounded poll until it holds
    # the repo the materialize step applied
    deadline = time.monotonic() + 240
    while True:
        answer = _post(f"{base}/api/v1.0/predictions", ask)
        tags = answer["meta"]["tags"]
        if tags.get("feature_source") == "online" or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert tags.get("feature_source") == "online", tags
    assert tags.get("known_user") is True, tags
    recs = answer["jsonData"]["recommendations"]
    assert len(recs) == N and all(r.get("explanation") for r in recs), recs
    assert "ab-router" in answer["meta"]["routing"]

    # gRPC through the Service's cluster DNS name, from inside the graph pod (the serving image has the protos)
    proc = subprocess.run(
        ["docker", "exec", f"{NAME}-{pod}-seldon-container-engine", "python", "-c", _GRPC, json.dumps(ask)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    grpc_recs = json.loads(proc.stdout)["jsonData"]["recommendations"]
    assert len(grpc_recs) == N and all(r.get("explanation") for r in grpc_recs), grpc_recs

    # clicks on the most-watched movies of a category the list does not hold: the next list gains that category
    held = {r["item_id"]: r["category"] for r in recs}
    seen = set(inter.loc[inter[C.USER_ID] == user, C.ITEM_ID])
    counts = inter[C.ITEM_ID].value_counts()
    by_category = items.set_index(C.ITEM_ID)[C.CATEGORY]
    absent = [c for c in by_category.value_counts().index if c not in held.values()]
    target = absent[0]  # the largest category the first list lacks
    picks = [i for i in counts.index if by_category.get(i) == target and i not in held and i not in seen][:3]
    assert len(picks) == 3, (target, picks)
    acked = []
    for item in picks:
        fid = f"fb-{uuid.uuid4().hex[:10]}"
        reply = _feedback(base, ask, answer, item, fid)
        assert reply["meta"]["tags"]["feedback_id"] == fid, reply
        acked.append(fid)
    second = _post(f"{base}/api/v1.0/predictions", ask)
    after = second["jsonData"]["recommendations"]
    gained = [r["item_id"] for r in after if r["category"] == target]
    assert gained and not set(gained) & set(held), (target, picks, held, after)
    assert not set(picks) & {r["item_id"] for r in after}  # clicked items are not recommended again

    # the event service's Redis stream: both answers' impressions and every acknowledged feedback
    state_url = rehearsal["secrets"]["smartreco-state"]["SMARTRECO_STATE"].replace(
        "@redis:6379", "@" + rehearsal["up"]["endpoints"]["redis"]
    )
    answers = {answer["jsonData"]["request_id"], second["jsonData"]["request_id"]}
    deadline = time.monotonic() + 30
    while True:  # the request logger is asynchronous (as Seldon's): bounded poll
        records = list(iter_log(state_url))
        impressions = {r["id"] for r in records if r["kind"] == IMPRESSION}
        if answers <= impressions or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answers <= impressions, (answers, impressions)
    fbs = {r["id"]: r for r in records if r["kind"] == FEEDBACK}
    assert set(acked) <= set(fbs), (acked, sorted(fbs))
    assert {fbs[f]["item_id"] for f in acked} == set(picks)
    assert {fbs[f]["request_id"] for f in acked} == {answer["jsonData"]["request_id"]}

    # both arms of the fixed split get traffic and feedback, so the A/B report has two variants to compare
    arms = set()
    for u in [u for u in sorted(set(inter[C.USER_ID]), key=int) if u != user][:24]:
        req = {"jsonData": {"user_id": str(u), "num_recommendations": 5}}
        got = _post(f"{base}/api/v1.0/predictions", req)
        arms.add(got["meta"]["routing"]["ab-router"])
        _feedback(base, req, got, got["jsonData"]["recommendations"][0]["item_id"], f"fb-{uuid.uuid4().hex[:10]}")
    assert arms == {0, 1}
    tmp = rehearsal["tmp"]
    report = _cli("ab", "report", "--logs", state_url, "--out", str(tmp / "ab"), env=rehearsal["env"], timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert any((tmp / "ab").iterdir())


def test_everything_carries_the_rehearsal_label(rehearsal) -> None:
    """What ``down`` removes is found by the label: every container of the rehearsal carries it (pods, init
    containers, Service proxies), and the pipeline steps are gone once they ended."""

    def names(*flt: str) -> set[str]:
        got = subprocess.run(["docker", "ps", "-a", *flt, "--format", "{{.Names}}"], capture_output=True, text=True)
        assert got.returncode == 0, got.stderr
        return set(got.stdout.split())

    labelled = names("--filter", f"label={LABEL}={NAME}")
    assert {n for n in names() if n.startswith(f"{NAME}-")} == labelled
    out = rehearsal["up"]
    (graph,) = runner.workload_pods(NAME, "SeldonDeployment/smartreco")
    expected = {f"{NAME}-svc-{key.split(':')[0]}" for key in out["endpoints"]["services"]}
    expected |= {f"{NAME}-{graph}", f"{NAME}-{graph}-model-fetch", f"{NAME}-{graph}-seldon-container-engine"}
    expected |= {f"{NAME}-{graph}-{node}-{arm}" for node in ("hybrid", "cf", "cb") for arm in "ab"}
    expected |= {f"{NAME}-mlflow-0-db-upgrade"}
    for pods in out["workloads"].values():
        for pod in pods:
            expected |= {f"{NAME}-{pod['pod']}", *(f"{NAME}-{pod['pod']}-{c['name']}" for c in pod["containers"])}
    assert expected <= labelled, sorted(expected - labelled)
    assert not {n for n in labelled if n.startswith(f"{NAME}-step-")}
