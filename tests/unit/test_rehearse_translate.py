"""The rehearsal's translation of rendered objects into pods (smartreco/rehearse), on the real rendered overlays:
what the kubelet would do with each field is what the container specs and ``docker run`` arguments say."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from smartreco.paths import project_root
from smartreco.rehearse import docker_args, patches, public_images, render, secrets, seldon, translate
from smartreco.rehearse.translate import TranslationError

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def rendered(manifest_tools) -> dict[str, list[dict]]:  # noqa: ARG001 - the fixture gates on kubectl
    return {ov: render.load_objects(render.render(ov)) for ov in render.OVERLAYS}


def _plan(objects: list[dict], replicas: int | None = None, models_patch: bool = False):
    made = secrets.generate(secrets.referenced(objects))
    patched, notes = patches.object_store_to_volume(objects)
    plan = translate.translate(patched, made, rehearsal="rh", replicas=replicas, models_patch=models_patch)
    return plan, made, notes


# ------------------------------------------------------------------------------------------ expansion
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)", "x1y2"),
        ("$(MISSING)", "$(MISSING)"),  # undefined: kept as written
        ("$$(A)", "$(A)"),  # $$ escapes
        ("cost $5", "cost $5"),
        ("tail $", "tail $"),
        ("$(A", "$(A"),
        ("postgresql://$(A):$(B)@h/db", "postgresql://1:2@h/db"),
    ],
)
def test_expand_follows_kubernetes(text: str, want: str) -> None:
    assert translate.expand(text, {"A": "1", "B": "2"}) == want


def test_quantities() -> None:
    assert translate.cpus("500m") == "0.5"
    assert translate.cpus("2") == "2"
    assert translate.memory_bytes("1Gi") == str(2**30)
    assert translate.memory_bytes("512Mi") == str(512 * 2**20)
    assert translate.memory_bytes("1G") == str(10**9)


# --------------------------------------------------------------------------------------- environment
def _container(**kw) -> dict:
    return {"name": "c", "image": "img", **kw}


def test_env_precedence_and_dependent_values() -> None:
    lookup = translate.Lookup(
        {"one": {"X": "from-one", "Y": "y1"}, "two": {"X": "from-two", "bad key": "v"}}, {"s": {"pw": "secret"}}
    )
    c = _container(
        envFrom=[
            {"configMapRef": {"name": "one"}},
            {"configMapRef": {"name": "two"}},
            {"secretRef": {"name": "absent", "optional": True}},
            {"prefix": "P_", "secretRef": {"name": "s"}},
        ],
        env=[
            {"name": "Y", "value": "env-wins"},
            {"name": "Z", "value": "$(Y)-$(X)-$(NOPE)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    )
    env = translate.container_env(c, lookup, {"metadata.name": "p-0"}, {"BASE": "b", "X": "base"}, "t")
    assert env["X"] == "from-two"  # the later envFrom source wins, over the Service links too
    assert env["Y"] == "env-wins"  # env wins over envFrom
    assert env["Z"] == "env-wins-from-two-$(NOPE)"
    assert env["P_pw"] == "secret" and env["PW"] == "secret" and env["POD"] == "p-0" and env["BASE"] == "b"
    assert "bad key" not in env


def test_missing_sources_fail_as_the_kubelet_would() -> None:
    lookup = translate.Lookup({"cm": {"k": "v"}}, {})
    with pytest.raises(TranslationError, match="ConfigMap 'nope' does not exist"):
        translate.container_env(_container(envFrom=[{"configMapRef": {"name": "nope"}}]), lookup, {}, {}, "t")
    with pytest.raises(TranslationError, match="has no key 'x'"):
        translate.container_env(
            _container(env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "x"}}}]),
            lookup,
            {},
            {},
            "t",
        )
    optional = _container(
        env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "x", "optional": True}}}]
    )
    assert "A" not in translate.container_env(optional, lookup, {}, {}, "t")


def test_root_where_non_root_is_required_is_refused() -> None:
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": 0}, "containers": [_container()]}
    with pytest.raises(TranslationError, match="runAsNonRoot"):
        translate.make_pod("p-0", "Deployment/p", {"spec": pod}, translate.Lookup({}, {}), "rh", "ns", {})


def test_unknown_volume_kind_and_mount_are_refused() -> None:
    lookup = translate.Lookup({}, {})
    pod = {"containers": [_container()], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    with pytest.raises(TranslationError, match="hostPath"):
        translate.make_pod("p-0", "Deployment/p", {"spec": pod}, lookup, "rh", "ns", {})
    pod = {"containers": [_container(volumeMounts=[{"name": "gone", "mountPath": "/x"}])]}
    with pytest.raises(TranslationError, match="no volume 'gone'"):
        translate.make_pod("p-0", "Deployment/p", {"spec": pod}, lookup, "rh", "ns", {})


def test_service_links_env() -> None:
    svc = translate.ServiceSpec("feast-feature-server", [{"name": "http", "port": 6566}], {})
    env = translate.service_link_env([svc])
    assert env["FEAST_FEATURE_SERVER_SERVICE_HOST"] == "feast-feature-server"
    assert env["FEAST_FEATURE_SERVER_SERVICE_PORT"] == "6566"
    assert env["FEAST_FEATURE_SERVER_PORT"] == "tcp://feast-feature-server:6566"
    assert env["FEAST_FEATURE_SERVER_PORT_6566_TCP_ADDR"] == "feast-feature-server"
    assert env["FEAST_FEATURE_SERVER_SERVICE_PORT_HTTP"] == "6566"
    pod = {"enableServiceLinks": False, "containers": [_container()]}
    made = translate.make_pod("p-0", "Deployment/p", {"spec": pod}, translate.Lookup({}, {}), "rh", "ns", env)
    assert "FEAST_FEATURE_SERVER_SERVICE_HOST" not in made.containers[0].env


# ------------------------------------------------------------------------------------ real overlays
def test_every_rendered_object_is_run_read_or_listed(rendered) -> None:
    for overlay, objects in rendered.items():
        plan, _, _ = _plan(objects)
        listed = {o for o, _ in plan.not_rehearsed}
        ran = {p.workload for p in plan.pods}
        for obj in objects:
            ident = f"{obj['kind']}/{obj['metadata']['name']}"
            assert obj["kind"] in translate.READ_KINDS or ident in listed or ident in ran, (overlay, ident)
        assert {"CronJob/smartreco-drift", "CronJob/smartreco-events-archive"} <= listed
        assert all("not" in why for _, why in plan.not_rehearsed)
        assert {
            "Deployment/mlflow",
            "Deployment/feast-feature-server",
            "Deployment/smartreco-events",
            "Deployment/smartreco-web",
            "StatefulSet/redis",
            "StatefulSet/postgres",
            "SeldonDeployment/smartreco",
        } == ran


def test_redis_statefulset(rendered) -> None:
    plan, made, _ = _plan(rendered["local"])
    pod = plan.pod("redis-0")
    (c,) = pod.containers
    assert c.manifest_image == "redis:7.2-alpine" and c.image == public_images.PUBLIC_IMAGES["redis:7.2-alpine"].local
    assert c.command is None  # the image's ENTRYPOINT (redis-server) takes the args
    assert c.args[:2] == ["--requirepass", made["smartreco-redis"]["password"]]  # $(REDIS_PASSWORD) expanded
    assert "--appendfsync" in c.args and c.args[c.args.index("--appendfsync") + 1] == "always"
    assert (c.user, c.group, c.groups, c.run_as_non_root) == (999, 999, [999], True)
    assert c.read_only_root and c.no_new_privileges and c.cap_drop == ["ALL"]
    assert (c.cpu_limit, c.memory_limit, c.requests) == ("1", str(2**30), {"cpu": "100m", "memory": "256Mi"})
    assert c.readiness.kind == "exec" and "redis-cli" in c.readiness.command[-1]
    assert c.liveness.kind == "tcp" and c.liveness.port == 6379  # the named port resolved
    assert pod.volumes["data"].kind == "pvc" and pod.volumes["data"].docker_volume == "rh-data-redis-0"
    assert pod.aliases == ["redis-0"]  # its own name: the Service's names belong to the Service's proxy
    svc = next(s for s in plan.services if s.name == "redis")
    proxy = docker_args.service_proxy_run(plan, svc, "img", Path("/p.py"), Path("/eps"))
    assert [proxy[i + 1] for i, a in enumerate(proxy) if a == "--network-alias"] == [
        "redis",
        "redis.smartreco",
        "redis.smartreco.svc",
        "redis.smartreco.svc.cluster.local",
    ]


def test_mlflow_backend_uri_and_object_store_patch(rendered) -> None:
    plan, made, notes = _plan(rendered["local"])
    (c,) = plan.pod("mlflow-0").containers
    pg = made["smartreco-postgres"]
    assert c.command == ["mlflow", "server"]
    assert c.args[1] == f"postgresql+psycopg2://{pg['username']}:{pg['password']}@postgres:5432/mlflow"
    dest = c.args[c.args.index("--artifacts-destination") + 1]
    assert dest == f"{patches.OBJECT_STORE_MOUNT}/smartreco-mlflow/artifacts"
    assert any(m.path == patches.OBJECT_STORE_MOUNT for m in c.mounts)
    assert c.env["AWS_SECRET_ACCESS_KEY"] == made["smartreco-object-store"]["AWS_SECRET_ACCESS_KEY"]
    assert c.readiness == translate.Probe("http", 5000, "/health", period_s=10.0)
    assert any("not Kubernetes-rehearsed" in n for n in notes)
    vol = plan.pod("mlflow-0").volumes[patches.OBJECT_STORE_CLAIM]
    assert vol.kind == "pvc" and vol.docker_volume == f"rh-pvc-{patches.OBJECT_STORE_CLAIM}"


def test_feast_env_and_configmap_volume(rendered) -> None:
    plan, made, _ = _plan(rendered["local"])
    pod = plan.pod("feast-feature-server-0")
    (c,) = pod.containers
    assert c.env["REDIS_PASSWORD"] == made["smartreco-redis"]["password"]
    assert c.env["SMARTRECO_REDIS_URL"] == "redis:6379"  # envFrom smartreco-config
    assert c.env["FEAST_REGISTRY_PATH"].startswith(patches.OBJECT_STORE_MOUNT)
    assert c.env["REDIS_SERVICE_HOST"] == "redis"  # Service links, as the kubelet injects them
    files = dict(pod.volumes["repo"].files)
    assert "feature_store.yaml" in files and "${FEAST_REGISTRY_PATH}" in files["feature_store.yaml"]
    assert any(m.volume == "repo" and m.read_only and m.path == "/feast" for m in c.mounts)
    assert pod.volumes["tmp"] == translate.Volume("tmp", "emptyDir", "rh-feast-feature-server-0-tmp")


def test_events_get_the_state_secret_and_the_claim(rendered) -> None:
    plan, made, _ = _plan(rendered["local"])
    events, web = plan.pod("smartreco-events-0"), plan.pod("smartreco-web-0")
    assert events.containers[0].env["SMARTRECO_STATE"] == made["smartreco-state"]["SMARTRECO_STATE"]
    assert made["smartreco-redis"]["password"] in made["smartreco-state"]["SMARTRECO_STATE"]
    assert events.volumes["events"].docker_volume == web.volumes["events"].docker_volume == "rh-pvc-smartreco-events"
    assert events.containers[0].readiness == translate.Probe("http", 8080, "/health/ready", period_s=5.0)
    assert any("Service/smartreco-web: a Service proxy" in n and "80 -> http" in n for n in plan.notes)


def test_seldon_predictor_pod(rendered) -> None:
    objects = rendered["local"]
    sdep = next(o for o in objects if o["kind"] == "SeldonDeployment")
    plan, _, _ = _plan(objects)
    pod = plan.pod("smartreco-default-0")
    nodes = {n["name"]: n for n in seldon.graph_nodes(sdep["spec"]["predictors"][0]["graph"])}
    names = [c.name for c in pod.containers]
    assert names[-1] == seldon.EXECUTOR and set(names[:-1]) == set(nodes)
    assert [c.name for c in pod.init_containers] == [seldon.MODEL_FETCH]
    for c in pod.containers[:-1]:
        assert c.env["PREDICTIVE_UNIT_ID"] == c.name
        assert json.loads(c.env["PREDICTIVE_UNIT_PARAMETERS"]) == nodes[c.name].get("parameters", [])
        assert c.env["SELDON_DEPLOYMENT_ID"] == "smartreco" and c.env["PREDICTOR_ID"] == "default"
        assert c.env["SMARTRECO_EVENTS_URL"] == "http://smartreco-events:8080"  # smartreco-node-env
        assert c.command is None and c.args is None  # the serving image's CMD runs seldon-core-microservice
        assert c.readiness.kind == "http" and c.readiness.path == "/health/status"
        # the operator's default preStop on every graph node without a lifecycle of its own
        assert c.pre_stop == translate.Hook("exec", command=("/bin/sh", "-c", "/bin/sleep 10"))
    executor = pod.containers[-1]
    assert executor.pre_stop is None  # the operator gives its executor none: SIGTERM at once on deletion
    # the operator's probe timing for its executor (readiness /ready; liveness a TCP connect: no /live here)
    assert (executor.readiness.kind, executor.readiness.path) == ("http", "/ready")
    for probe in (executor.readiness, executor.liveness):
        assert (probe.initial_delay_s, probe.period_s, probe.failure_threshold, probe.timeout_s) == (20, 5, 3, 60)
    assert executor.image == sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"]
    assert executor.command == ["python", "-m", "inference_graph.executor"]
    assert "--attach" in executor.args and executor.args[executor.args.index("--port") + 1] == str(seldon.REST_PORT)
    assert executor.env["SELDON_LOG_LEVEL"] == "INFO"  # svcOrchSpec.env
    assert executor.memory_limit == str(512 * 2**20)  # svcOrchSpec.resources
    graph_file = dict(pod.volumes["seldon-rehearsal-graph"].files)[seldon.GRAPH_FILE]
    patched = next(o for o in patches.object_store_to_volume(objects)[0] if o["kind"] == "SeldonDeployment")
    assert json.loads(graph_file) == patched  # the executor reads the rendered SeldonDeployment (+ the S3 patch)
    svc = next(s for s in plan.services if s.name == "smartreco-default")
    assert [p["port"] for p in svc.ports] == [seldon.REST_PORT, seldon.GRPC_PORT]
    assert svc.pods == ["smartreco-default-0"]
    assert plan.pod("smartreco-default-0").volumes["models"].docker_volume == "rh-smartreco-default-0-models"


def test_a_nodes_own_lifecycle_is_kept_and_every_prestop_handler_is_read(rendered) -> None:
    objects = [dict(o) for o in rendered["local"]]
    i = next(i for i, o in enumerate(objects) if o["kind"] == "SeldonDeployment")
    sdep = json.loads(json.dumps(objects[i]))
    containers = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"]
    by_name = {c["name"]: c for c in containers}
    by_name["cf-a"]["lifecycle"] = {"preStop": {"httpGet": {"path": "/drain", "port": "http"}}}
    by_name["cb-a"]["lifecycle"] = {"preStop": {"sleep": {"seconds": 3}}}
    objects[i] = sdep
    pod = _plan(objects)[0].pod("smartreco-default-0")
    hooks = {c.name: c.pre_stop for c in pod.containers}
    assert hooks["cf-a"] == translate.Hook("http", port=9003, path="/drain")  # the named port resolved
    assert hooks["cb-a"] == translate.Hook("sleep", seconds=3.0)
    assert hooks["hybrid-a"] == translate.Hook("exec", command=("/bin/sh", "-c", "/bin/sleep 10"))
    by_name["cf-a"]["lifecycle"] = {"postStart": {"exec": {"command": ["true"]}}}
    with pytest.raises(TranslationError, match="postStart: not rehearsed"):
        _plan(objects)
    by_name["cf-a"]["lifecycle"] = {"preStop": {"tcpSocket": {"port": 9003}}}
    with pytest.raises(TranslationError, match=r"preStop: handler not rehearsed \(\['tcpSocket'\]\)"):
        _plan(objects)
    # malformed handlers: a clear error naming where, never a KeyError/ValueError traceback
    by_name["cf-a"]["lifecycle"] = {"preStop": {"exec": {}}}
    with pytest.raises(TranslationError, match=r"cf-a.*\.lifecycle: malformed \(KeyError: 'command'\)"):
        _plan(objects)
    by_name["cf-a"]["lifecycle"] = {"preStop": {"sleep": {"seconds": "soon"}}}
    with pytest.raises(TranslationError, match=r"\.lifecycle: malformed \(ValueError"):
        _plan(objects)
    by_name["cf-a"].pop("lifecycle")
    by_name["cf-a"]["readinessProbe"] = {"httpGet": {"path": "/health/status"}}
    with pytest.raises(TranslationError, match=r"\.readinessProbe: malformed \(KeyError: 'port'\)"):
        _plan(objects)


def test_operator_grace_period_and_no_user_supplied_executor(rendered) -> None:
    objects = [dict(o) for o in rendered["local"]]
    i = next(i for i, o in enumerate(objects) if o["kind"] == "SeldonDeployment")
    sdep = json.loads(json.dumps(objects[i]))
    spec = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    objects[i] = sdep
    given = spec["terminationGracePeriodSeconds"]
    assert given != seldon.OPERATOR_GRACE_S  # the manifest's own value, kept (not the operator's 20)
    assert _plan(objects)[0].pod("smartreco-default-0").termination_grace_s == given
    spec.pop("terminationGracePeriodSeconds")  # none given: the operator's 20 s, not Kubernetes' 30
    assert _plan(objects)[0].pod("smartreco-default-0").termination_grace_s == seldon.OPERATOR_GRACE_S == 20
    # a container named like the executor is not merged into the operator's: the operator adds none at all
    spec["containers"].append({"name": seldon.EXECUTOR, "image": "seldonio/seldon-core-executor:1.19.0",
                               "lifecycle": {"preStop": {"sleep": {"seconds": 10}}}})
    with pytest.raises(TranslationError, match="the operator then adds no executor of its own"):
        _plan(objects)


def test_models_patch_drops_model_fetch_and_says_so(rendered) -> None:
    plan, _, _ = _plan(rendered["local"], models_patch=True)
    assert plan.pod("smartreco-default-0").init_containers == []
    assert any("model-fetch" in n and "rehearsal patch" in n for n in plan.notes)


def test_replicas_override(rendered) -> None:
    plan, _, _ = _plan(rendered["production"], replicas=2)
    names = [p.name for p in plan.pods]
    assert {"smartreco-default-0", "smartreco-default-1", "smartreco-web-1", "mlflow-1"} <= set(names)
    assert "redis-1" not in names and "postgres-1" not in names  # StatefulSets keep their replicas
    a, b = plan.pod("smartreco-default-0"), plan.pod("smartreco-default-1")
    assert a.volumes["tmp"].docker_volume != b.volumes["tmp"].docker_volume  # emptyDir: one per pod
    svc = next(s for s in plan.services if s.name == "smartreco-default")
    assert svc.pods == ["smartreco-default-0", "smartreco-default-1"]


# ------------------------------------------------------------------------------------------- secrets
def test_secrets_referenced_generated_and_kept_private(rendered, tmp_path: Path) -> None:
    refs = secrets.referenced(rendered["local"])
    assert set(refs) == {"smartreco-redis", "smartreco-postgres", "smartreco-object-store", "smartreco-state"}
    assert refs["smartreco-postgres"] == {"username", "password"}
    one, two = secrets.generate(refs), secrets.generate(refs)
    assert one["smartreco-redis"]["password"] != two["smartreco-redis"]["password"]  # fresh per rehearsal
    path = secrets.write(tmp_path / "rh", one)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(secrets.SecretError, match="no recipe"):
        secrets.generate({"other": set()})
    with pytest.raises(secrets.SecretError, match="key 'token'"):
        secrets.generate({"smartreco-redis": {"token"}})


def test_rehearsal_state_is_outside_the_repository(monkeypatch) -> None:
    from smartreco import settings

    monkeypatch.delenv("SMARTRECO_REHEARSAL_DIR", raising=False)
    folder = Path(settings.REHEARSAL_DIR.get()).resolve()
    assert project_root().resolve() not in [folder, *folder.parents]


# --------------------------------------------------------------------------------------- docker args
def test_docker_args_of_a_pod(rendered, tmp_path: Path) -> None:
    plan, made, _ = _plan(rendered["local"])
    pod = plan.pod("redis-0")
    pause = docker_args.pause_run(plan, pod)
    assert pause[pause.index("--network") + 1] == "rh" and pause[pause.index("--hostname") + 1] == "redis-0"
    assert [pause[i + 1] for i, a in enumerate(pause) if a == "--network-alias"] == pod.aliases
    args, env = docker_args.container_run(plan, pod, pod.containers[0], {})
    assert args[args.index("--network") + 1] == "container:rh-redis-0"
    assert args[args.index("--user") + 1] == "999:999" and args[args.index("--group-add") + 1] == "999"
    assert "--read-only" in args and args[args.index("--cap-drop") + 1] == "ALL"
    assert "type=volume,source=rh-data-redis-0,target=/data" in args
    assert args[args.index("--restart") + 1] == "always"
    image_at = args.index(pod.containers[0].image)
    assert args[image_at + 1 :] == pod.containers[0].args and "--entrypoint" not in args
    # values reach docker through its environment, never its argv (ps shows argv)
    password = made["smartreco-redis"]["password"]
    assert all(password not in a for a in args[:image_at]) and env["REDIS_PASSWORD"] == password
    assert f"{docker_args.LABEL}=rh" in args


def test_cpu_requests_become_cpu_shares_as_the_kubelet_sets_them(rendered) -> None:
    """requests.cpu -> cpu.shares = millicores * 1024 / 1000 (at least 2); the limit when there is no request (the
    API server's default); 2 with neither (BestEffort); --cpus stays the limit."""
    plan, _, _ = _plan(rendered["production"], replicas=2)
    graph = plan.pod("smartreco-default-0")
    by_name = {c.name: c for c in graph.all_containers()}
    for name, shares in (("hybrid-a", 256), ("ab-router", 102), ("model-fetch", 102)):
        args, _ = docker_args.container_run(plan, graph, by_name[name], {})
        assert args[args.index("--cpu-shares") + 1] == str(shares), name
    args, _ = docker_args.container_run(plan, graph, by_name["ab-router"], {})
    assert args[args.index("--cpus") + 1] == "0.5"
    c = by_name["hybrid-a"]
    assert docker_args.cpu_shares(replace(c, requests={"cpu": "2"})) == 2048
    assert docker_args.cpu_shares(replace(c, requests={"cpu": "1m"})) == 2  # 1.024 -> 1, raised to the minimum
    assert docker_args.cpu_shares(replace(c, requests={"cpu": "0.1"})) == 102
    assert docker_args.cpu_shares(replace(c, requests={}, cpu_limit="1.5")) == 1536
    assert docker_args.cpu_shares(replace(c, requests={"memory": "1Gi"}, cpu_limit=None)) == 2
    assert docker_args.millicores("250m") == 250 and docker_args.millicores("0.0005") == 1  # rounded up


def test_docker_args_command_configmap_and_init(rendered, tmp_path: Path) -> None:
    plan, _, _ = _plan(rendered["local"])
    feast = plan.pod("feast-feature-server-0")
    args, _ = docker_args.container_run(plan, feast, feast.containers[0], {"repo": tmp_path / "repo"})
    entry = args.index("--entrypoint")
    assert args[entry + 1] == "feast" and args[entry + 2] == feast.containers[0].image
    assert args[entry + 3 : entry + 5] == ["-c", "/feast"]
    assert f"type=bind,source={tmp_path / 'repo'},target=/feast,readonly" in args
    graph = plan.pod("smartreco-default-0")
    init_args, _ = docker_args.container_run(plan, graph, graph.init_containers[0], {})
    assert init_args[init_args.index("--restart") + 1] == "no"


def test_attached_group_reads_manifest_ports(rendered) -> None:
    from inference_graph.executor.attached import AttachedGroup
    from inference_graph.executor.graph import load_graph
    from inference_graph.executor.processes import NodeStartError

    sdep = next(o for o in rendered["local"] if o["kind"] == "SeldonDeployment")
    path = project_root() / "manifests/base/seldon/seldondeployment.yaml"
    graph = load_graph(path)
    group = AttachedGroup(graph.nodes())
    containers = {c["name"]: c for c in sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"]}
    for name, url in group.urls().items():
        env = {e["name"]: e.get("value") for e in containers[name]["env"]}
        assert url == f"http://127.0.0.1:{env['PREDICTIVE_UNIT_HTTP_SERVICE_PORT']}"
    a, b = graph.nodes()[:2]
    b.container = {**b.container, "env": a.container["env"]}
    with pytest.raises(NodeStartError, match="share HTTP port"):
        AttachedGroup([a, b])


def test_skip_lists_the_workload_as_not_rehearsed(rendered) -> None:
    objects = rendered["local"]
    made = secrets.generate(secrets.referenced(objects))
    plan = translate.translate(objects, made, rehearsal="rh", skip=frozenset({"mlflow"}))
    assert "Deployment/mlflow" not in {p.workload for p in plan.pods}
    assert ("Deployment/mlflow", "not rehearsed: left out with --skip") in plan.not_rehearsed
    assert next(s for s in plan.services if s.name == "mlflow").pods == []


def test_summary_without_an_engine_names_every_workload(rendered, tmp_path: Path) -> None:
    from smartreco.rehearse import session

    objects = rendered["local"]
    made = secrets.generate(secrets.referenced(objects))
    plan, patched = session.prepare(objects, name="rh", replicas=None, models_patch=False, made_secrets=made)
    out = session.summary(plan, None, tmp_path / "secrets.json", None)
    assert set(out["workloads"]) == {p.workload for p in plan.pods}
    assert out["endpoints"]["s3"].startswith("not rehearsed")
    assert out["images"] == public_images.table(public_images.plan_images(plan.pods)) and out["not_rehearsed"]
    assert [r["manifest"] for r in out["images"]] == list(public_images.PUBLIC_IMAGES)  # local: project tags as built
    assert json.dumps(out)  # --json prints it
    assert made["smartreco-redis"]["password"] not in json.dumps(out)  # the summary points at the file only
    assert any(o["kind"] == "ConfigMap" and o["data"].get("FEAST_REGISTRY_PATH", "").startswith("/") for o in patched)


def test_service_links_do_not_collide_with_settings_a_pod_reads(rendered) -> None:
    """The kubelet puts <SVC>_PORT=tcp://... into every pod of the namespace: Service smartreco-web makes
    SMARTRECO_WEB_PORT=tcp://smartreco-web:80, which is also a declared (int) setting. Only scripts read it today;
    no variable a cluster deployable reads may be shadowed that way."""
    from smartreco import settings

    off_cluster = {"scripts", "cli", "build"}
    for overlay, objects in rendered.items():
        plan, _, _ = _plan(objects)
        links = translate.service_link_env(plan.services)
        for name in links:
            s = settings.SETTINGS.get(name)
            if s is not None:
                assert set(s.needs) <= off_cluster, (overlay, name, s.needs)


def test_dry_run_lists_every_container_and_no_secret_value(manifest_tools, monkeypatch, tmp_path: Path) -> None:  # noqa: ARG001
    from smartreco.rehearse import session

    monkeypatch.setenv("SMARTRECO_REHEARSAL_DIR", str(tmp_path / "state"))
    made: dict = {}
    real = secrets.generate

    def keep(refs):
        made.update(real(refs))
        return made

    monkeypatch.setattr(secrets, "generate", keep)
    out = session.dry_run("local", models_patch=True)
    proxy = f"{docker_args.LABEL_CONTAINER}={docker_args.PROXY_LABEL}"
    runs = [c for c in out["docker"] if c[1] == "run" and proxy not in c]
    names = {c[c.index("--name") + 1] for c in runs}
    pods = [p for pods in out["workloads"].values() for p in pods]
    running = [c for c in runs if c[c.index("--restart") + 1] == "always"]  # init containers run once ("no")
    assert len(names) == len(runs) and len(running) == sum(len(p["containers"]) + 1 for p in pods)  # + sandboxes
    # one Service proxy per Service with a selector, under the Service's names
    proxies = {c[c.index("--service") + 1]: c for c in out["docker"] if proxy in c}
    assert set(proxies) == {
        "feast-feature-server",
        "mlflow",
        "postgres",
        "redis",
        "smartreco-events",
        "smartreco-web",
        "smartreco-default",
    }
    web = proxies["smartreco-web"]
    assert "smartreco-web.smartreco.svc.cluster.local" in web and web[web.index("--port") + 1] == "80"
    values = [v for data in made.values() for v in data.values() if len(v) > 12]
    leaking = {c[c.index("--name") + 1] for c in runs if any(v in a for v in values for a in c)}
    # only where the manifest itself puts a Secret into argv ($(REDIS_PASSWORD), $(PG_PASSWORD) in args), as the
    # kubelet expands it into the process's command line; environment values never reach docker's argv
    assert values and leaking == {"smartreco-rehearsal-redis-0-redis", "smartreco-rehearsal-mlflow-0-mlflow"}
    assert not (tmp_path / "state").exists()  # a dry run keeps nothing


def test_rollout_generation_names_new_predictor_pods(rendered) -> None:
    """`rehearse apply` starts the new predictor pods next to the old ones: other names, fresh emptyDirs, the same
    labels (so the Service selects both until the old pods leave it)."""
    objects = rendered["local"]
    made = secrets.generate(secrets.referenced(objects))
    old = translate.translate(objects, made, rehearsal="rh")
    new = translate.translate(objects, made, rehearsal="rh", generation="-g2")
    a, b = old.pod("smartreco-default-0"), new.pod("smartreco-default-g2-0")
    assert a.labels == b.labels and b.labels["seldon-app"] == "smartreco-default"
    (svc,) = (s for s in new.services if s.name == "smartreco-default")
    assert svc.pods == ["smartreco-default-g2-0"]
    assert a.volumes["models"].docker_volume != b.volumes["models"].docker_volume
    assert old.pod("redis-0").volumes["data"] == new.pod("redis-0").volumes["data"]  # claims stay


# ------------------------------------------------------------------------------------- production overlay
def test_production_overlay_runs_the_local_builds_of_its_registry_images(rendered) -> None:
    """`--overlay production` names the project's images in a registry (kustomize `images:`): the rehearsal runs the
    local builds instead, and the one table `up` prints says so, next to the Debian stand-ins."""
    from smartreco import images

    plan, _, _ = _plan(rendered["production"])
    manifest_images = public_images.plan_images(plan.pods)
    assert any(ref.startswith("registry.example.com/") for ref in manifest_images)
    ran = {c.image for p in plan.pods for c in p.all_containers()}
    assert ran == {
        images.serving_image(),
        images.pipeline_image(),
        "smartreco-redis:bookworm",
        "smartreco-postgres:bookworm",
    }
    rows = {r["manifest"]: r["rehearsal"] for r in public_images.table(manifest_images)}
    assert rows["registry.example.com/smartreco/smartreco-serving:0.1.0"] == images.serving_image()
    assert rows["registry.example.com/smartreco/smartreco-pipeline:0.1.0"] == images.pipeline_image()
    assert rows["postgres:16-alpine"] == "smartreco-postgres:bookworm"
    # a renamed registry needs no new entry; another tag is named where the table is printed
    assert public_images.local_image("my.registry:5000/team/smartreco-serving:9.9") == images.serving_image()
    (row,) = public_images.table(["my.registry:5000/team/smartreco-serving:9.9"])[len(public_images.PUBLIC_IMAGES) :]
    assert "9.9" in row["differs"]
    assert public_images.local_image("quay.io/other/thing:1") == "quay.io/other/thing:1"


def test_production_overlay_replicas_and_what_is_not_rehearsed(rendered) -> None:
    plan, _, _ = _plan(rendered["production"])
    workloads = {w: len(p) for w, p in plan.workloads().items()}
    assert workloads["SeldonDeployment/smartreco"] == 3 and workloads["Deployment/mlflow"] == 2
    assert workloads["Deployment/feast-feature-server"] == 2 and workloads["StatefulSet/postgres"] == 1
    notes = "\n".join(plan.notes)
    assert "componentSpecs[0].hpaSpec not rehearsed" in notes and "pdbSpec not rehearsed" in notes
    assert "Deployment/feast-feature-server: topologySpreadConstraints not rehearsed" in notes
    two, _, _ = _plan(rendered["production"], replicas=2)
    assert len(two.workloads()["SeldonDeployment/smartreco"]) == 2 and len(two.workloads()["Deployment/mlflow"]) == 2
    assert len(two.workloads()["StatefulSet/redis"]) == 1  # a StatefulSet keeps its count


def test_forward_publishes_the_services_port_on_loopback(rendered) -> None:
    from smartreco.rehearse import session

    objects = rendered["local"]
    made = secrets.generate(secrets.referenced(objects))
    plan, _ = session.prepare(
        objects, name="rh", replicas=None, models_patch=False, made_secrets=made, forwards=("mlflow:5000",)
    )
    pod = plan.pod("mlflow-0")
    assert pod.forwards == [(5000, 5000)]
    args = docker_args.pause_run(plan, pod)
    assert args[args.index("--publish") + 1] == "127.0.0.1:5000:5000"
    assert "--publish" not in docker_args.pause_run(plan, plan.pod("redis-0"))
    out = session.summary(plan, None, Path("/nonexistent"), None)
    assert out["endpoints"]["forwards"] == {"mlflow-0:5000": "127.0.0.1:5000"}
    for bad in ("nosuch:5000", "mlflow", "mlflow:x"):
        with pytest.raises(TranslationError, match="--forward"):
            session.prepare(objects, name="rh", replicas=None, models_patch=False, made_secrets=made, forwards=(bad,))


def test_object_store_patch_is_idempotent(rendered) -> None:
    """`rehearse apply` patches the rehearsal's saved objects again: no second volume or mount."""
    once, _ = patches.object_store_to_volume(rendered["local"])
    twice, _ = patches.object_store_to_volume(once)
    assert once == twice
